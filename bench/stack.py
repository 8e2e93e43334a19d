"""`make bench-stack` (S6): S1 through Traefik over HTTPS against S1 straight to the
app container, in the compose stack.

The stack comes up as production deploys it, with the project's own
scripts/deploy.sh on the real compose.yaml and Dockerfile (its own compose
project, network and loopback ports, so it sits beside a running stack suite),
with the local-CA certificate (`CERT_RESOLVER=''`, as `make up` on a laptop): the
certificate's origin changes nothing on the request path. The data is
bench/data.py's, written inside the app container. wrk then alternates between
https://<Traefik>/api/items/ and http://<app container>:8000/api/items/, and the
stack is taken down (volumes too) whatever happens. Needs root, as `make test-stack`.
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from bench import data, wrk
from bench.report import DIRECT, TRAEFIK, Report, Run, Target, format_table, ratio, write_chart
from devtools.embedded_postgres import free_port
from scripts.images import pinned_images
from scripts.init_env import fernet_key
from scripts.init_env import render as render_env

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "fastapi-stack-bench"
DOMAIN = "bench.localhost"
# Beside the stack suite's 198.18.201.0/24 and the default 198.18.200.0/24.
PROXY_SUBNET = "198.18.210.0/24"
APP_IMAGE = "fastapi-stack-app:bench"
# The stack's own images (pebble is the stack suite's); tags: scripts/images.py.
IMAGES = tuple(image for name, image in pinned_images().items() if name != "PEBBLE_IMAGE")
# The user's own example password, as everywhere.
DATABASE_PASSWORD = "`b{5:P3kUv5LdJF."  # noqa: S105 (a throwaway database's)
# With the access logs on, Traefik's (compose.yaml) and the app's: the proxy's log
# shows the requests the app never saw, so it stays on and is measured.
S6_MIN_RATIO = 0.65

# Runs inside the app container (its Python, its app package, its database
# settings): bench/data.py's source followed by this.
SEED_PROGRAM = """
import os, sys
from psycopg.conninfo import make_conninfo
host, _, port = os.environ["POSTGRES_URL"].rpartition(":")
conninfo = make_conninfo(host=host, port=port, user=os.environ["POSTGRES_USER"],
                         password=os.environ["POSTGRES_PW"], dbname=os.environ["POSTGRES_DB"])
with psycopg.connect(conninfo, autocommit=True) as connection:
    seed_population(connection, bcrypt_rounds=int(sys.argv[1]))
    give_items(connection, user_id=int(sys.argv[2]))
    analyze(connection)
"""


# Runs inside the app container (no ps there): each gunicorn worker's RSS in MB.
WORKER_RSS_PROGRAM = """
import os
status = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        command = open(f"/proc/{pid}/cmdline", "rb").read()
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    except OSError:
        continue
    if b"gunicorn" in command:
        status[pid] = fields
for fields in status.values():
    if fields["PPid"].strip() in status:
        print(int(fields["VmRSS"].split()[0]) / 1024)
"""


class StackError(RuntimeError):
    """The stack could not be brought up or measured."""


def log(message: str) -> None:
    print(f"[bench-stack] {message}", flush=True)


def run(
    args: list[str], *, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 (our own arguments, no shell)
        args,
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise StackError(
            f"{' '.join(args[:4])}... exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def env_file_text(values: dict[str, str]) -> str:
    """.env.example with `values` substituted (and appended when new)."""
    return render_env((ROOT / ".env.example").read_text(), values)


def prepare_machine() -> None:
    """What scripts/test-stack.sh prepares: the engine, the images, curl and openssl."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:  # noqa: S607
        log("starting the Docker engine (tests/stack/offline/docker-engine.sh)")
        run(["tests/stack/offline/docker-engine.sh"])
    run(["tests/stack/offline/standin-images.sh", *IMAGES])
    missing = [tool for tool in ("curl", "openssl") if shutil.which(tool) is None]
    if missing:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing])


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.https_port = free_port()
        self.env_file = workdir / "stack.env"
        self.settings = {
            "ENVIRONMENT": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "TOTP_ENCRYPTION_KEYS": fernet_key(),
            "FIRST_SUPERUSER_EMAIL": "admin@example.com",
            "FIRST_SUPERUSER_PASSWORD": secrets.token_urlsafe(18),
            "POSTGRES_PW": DATABASE_PASSWORD,
            "DOMAIN": DOMAIN,
            "CERT_RESOLVER": "",
            "BIND_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            "HTTPS_PORT": str(self.https_port),
            "PROXY_NETWORK": f"{PROJECT}-proxy",
            "PROXY_SUBNET": PROXY_SUBNET,
            "APP_IMAGE": APP_IMAGE,
            "LOCAL_CERTS_DIR": str(workdir / "certs"),
            # The user under test's access token must outlive the whole run.
            "ACCESS_TOKEN_TTL": "PT2H",
        }
        self.env_file.write_text(env_file_text(self.settings))
        self.env = {
            **os.environ,
            "COMPOSE_FILE": "compose.yaml",
            "COMPOSE_PROJECT_NAME": PROJECT,
            "ENV_FILE": str(self.env_file),
        }

    def compose(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(
            ["docker", "compose", "--env-file", str(self.env_file), *args],
            env=self.env,
            stdin=stdin,
        )

    def deploy(self) -> None:
        self.down()  # leftovers of an interrupted run
        started = time.monotonic()
        log("scripts/deploy.sh: build, migrate, start, healthy over verified HTTPS")
        run(["scripts/deploy.sh"], env=self.env)
        log(f"deployed in {time.monotonic() - started:.0f} s")

    def down(self) -> None:
        subprocess.run(  # noqa: S603 (our own arguments, no shell)
            ["docker", "compose", "--env-file", str(self.env_file), "down", "--volumes"],  # noqa: S607
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            check=False,
            timeout=300,
        )

    def address(self, service: str) -> str:
        """A container's address on the proxy network: the app's is where Traefik
        reaches it; Traefik's is where a client's packets arrive once the host has
        forwarded them. Both paths are measured from there, so neither pays for how
        this machine reaches a published port from its own loopback (Docker's
        userland proxy copies every byte; a server's clients come in through the
        kernel's NAT instead)."""
        containers = self.compose("ps", "--quiet", service).stdout.split()
        if len(containers) != 1:
            raise StackError(f"expected one {service} container, found {containers}")
        inspected: list[dict[str, Any]] = json.loads(
            run(["docker", "inspect", containers[0]]).stdout
        )
        networks = inspected[0]["NetworkSettings"]["Networks"]
        address: str = networks[self.settings["PROXY_NETWORK"]]["IPAddress"]
        return address

    def worker_rss_mb(self) -> list[float]:
        """The app container's gunicorn workers (gunicorn processes whose parent is
        gunicorn too: the master's forks), in MB."""
        shown = self.compose("exec", "-T", "app", "python", "-c", WORKER_RSS_PROGRAM).stdout
        return sorted(round(float(line), 1) for line in shown.split())


def seed(stack: Stack, user_id: int) -> None:
    program = (ROOT / "bench" / "data.py").read_text() + SEED_PROGRAM
    rounds = str(Settings.model_fields["BCRYPT_ROUNDS"].default)  # the app's default cost
    stack.compose("exec", "-T", "app", "python", "-", rounds, str(user_id), stdin=program)


def register(direct: str) -> tuple[int, str]:
    answer = httpx.post(
        f"{direct}/api/auth/register",
        json={"email": "bench@example.com", "password": data.PASSWORD},
        timeout=30,
    )
    if answer.status_code != 201:
        raise StackError(f"registering the user under test: {answer.status_code} {answer.text}")
    body = answer.json()
    return body["user"]["id"], body["access_token"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench")
    parser.add_argument("--smoke", action="store_true", help="one ~2 s run per path")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.warmup = 2.0, 1, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wrk.wrk_binary()
    load = wrk.Load(args.threads, args.connections, args.seconds)
    workdir = Path(tempfile.mkdtemp(prefix="fastapi-stack-bench-stack-"))
    stack = Stack(workdir)
    runs: list[Run] = []
    try:
        prepare_machine()
        stack.deploy()
        direct = f"http://{stack.address('app')}:8000"
        through_traefik = f"https://{stack.address('traefik')}:443"
        user_id, access_token = register(direct)
        log(f"seeding {data.USERS:,} users and {data.ITEMS:,} items in the stack's database")
        seed(stack, user_id)
        token_file = workdir / "access-token"
        token_file.write_text(access_token + "\n")
        urls = {TRAEFIK: through_traefik, DIRECT: direct}

        def measure(path: str, seconds: float) -> wrk.WrkResult:
            host = DOMAIN if path == TRAEFIK else None
            timed = wrk.Load(args.threads, args.connections, seconds)
            return wrk.run(urls[path] + "/api/items/", "get", timed, str(token_file), host=host)

        for path in (TRAEFIK, DIRECT):
            measure(path, args.warmup)
        for round_ in range(args.repeats):
            order = (TRAEFIK, DIRECT) if round_ % 2 == 0 else (DIRECT, TRAEFIK)
            for path in order:
                result = measure(path, args.seconds)
                if result.requests == 0 or result.errors == result.requests:
                    raise StackError(f"S6 {path}: no successful request ({result})")
                runs.append(Run("S6", path, round_, result))
                log(
                    f"round {round_ + 1} S6 {path:8}: {result.rps:8.1f} req/s  "
                    f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
                    f"errors {result.errors}"
                )
        memory = {"app (container)": stack.worker_rss_mb()}
    except (StackError, wrk.WrkError, httpx.HTTPError) as problem:
        log(f"the benchmark could not run: {problem}")
        return 1
    finally:
        log("taking the stack down (volumes too)")
        stack.down()
        shutil.rmtree(workdir, ignore_errors=True)

    report = Report(
        title=(
            f"make bench-stack{' --smoke' if args.smoke else ''}: wrk -t{load.threads} "
            f"-c{load.connections} -d{load.seconds:g}s, median of {args.repeats}, "
            f"{len(os.sched_getaffinity(0))} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        ),
        machine={"cores": len(os.sched_getaffinity(0)), "wrk": wrk.wrk_version()},
        protocol={
            "seconds": args.seconds,
            "repeats": args.repeats,
            "wrk_threads": args.threads,
            "wrk_connections": args.connections,
            "traefik": "https://<traefik>/api/items/ (TLS 1.2+, local CA certificate)",
            "direct": "http://<app container>:8000/api/items/",
        },
        runs=runs,
        memory_mb=memory,
    )
    traefik, direct_summary = report.summary("S6", TRAEFIK), report.summary("S6", DIRECT)
    assert traefik is not None
    assert direct_summary is not None
    report.targets = [
        Target(
            "S6",
            "item list req/s, through Traefik ÷ direct",
            ratio(traefik.rps, direct_summary.rps),
            S6_MIN_RATIO,
            at_least=True,
            note=(
                f"p99 {traefik.p99_ms:.1f} ms through Traefik, "
                f"{direct_summary.p99_ms:.1f} ms direct"
            ),
        )
    ]
    print("\n" + format_table(report), flush=True)
    (args.out / "stack-results.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
    write_chart(report, args.out / "stack-chart.png")
    log(f"wrote {args.out / 'stack-results.json'} and {args.out / 'stack-chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
