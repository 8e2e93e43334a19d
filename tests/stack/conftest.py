"""The stack suite: the real compose.yaml and Dockerfile on a real Docker engine.

scripts/test-stack.sh prepares the engine, the images and the tools, then runs
`pytest tests/stack`. The session brings the stack up once with the project's own
deploy script (scripts/deploy.sh), with tests/stack/compose.test.yaml adding
pebble as the ACME CA, and takes it down (volumes too) at the end, pass or fail.

Nothing is skipped: a missing engine, image or tool fails the test that needs it.
STACK_KEEP=1 leaves the stack running afterwards, to look around (the next run
takes it down first).
"""

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.images import pinned_images
from scripts.init_env import fernet_key
from scripts.init_env import render as render_env

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "stack"
DOMAIN = "fastapi-stack.test"
PROJECT = "fastapi-stack-e2e"
COMPOSE_FILES = "compose.yaml:tests/stack/compose.test.yaml"
# The user's own example password: it must survive `source`, compose and the app.
EXAMPLE_DB_PASSWORD = "`b{5:P3kUv5LdJF."
PASSWORD = "correct horse battery staple"

# The test domain (and *.localhost) resolves to this machine (Traefik's ports are bound to
# 127.0.0.1) for this process only: no /etc/hosts edits, no DNS. TLS still
# sees the real name (SNI and certificate checks).
_real_getaddrinfo = socket.getaddrinfo


# Names a test maps elsewhere (the swarm's Traefik, reached at its task's address).
ADDRESSES: dict[str, str] = {}


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    names = (DOMAIN, "localhost")
    # anyio (httpx's async clients) passes the name IDNA-encoded, as bytes.
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name in ADDRESSES:
        host = ADDRESSES[name]
    elif isinstance(name, str) and any(name == n or name.endswith("." + n) for n in names):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo

TIMINGS: list[tuple[str, float]] = []
NOTES: list[str] = []  # printed at the end of the run, e.g. the screenshot's path
# Figures of the fault tests (requests sent, failed, writes acknowledged, found...),
# printed at the end and written to artifacts/stack/figures.json for the record.
FIGURES: dict[str, dict[str, Any]] = {}


def timed(label: str, started: float) -> float:
    elapsed = time.monotonic() - started
    TIMINGS.append((label, elapsed))
    return elapsed


def record_figures(label: str, figures: dict[str, Any]) -> None:
    """Keep a test's figures for the summary (recorded before its asserts, so a
    failing run still shows them)."""
    FIGURES[label] = figures
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("stack timings")
        for label, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.1f} s  {label}")
    if FIGURES:
        terminalreporter.section("stack figures")
        for label, figures in FIGURES.items():
            values = ", ".join(f"{key} {value}" for key, value in figures.items())
            terminalreporter.write_line(f"{label}: {values}")
    for note in NOTES:
        terminalreporter.write_line(note)


def run(
    args: list[str], *, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"command failed ({result.returncode}): {' '.join(args)}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def env_file_text(values: dict[str, str]) -> str:
    """.env.example with `values` substituted (and appended when new)."""
    return render_env((REPO / ".env.example").read_text(), values)


@dataclass
class Stack:
    workdir: Path
    settings: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    root_ca: Path | None = None
    domain: str = DOMAIN

    @property
    def env_file(self) -> Path:
        return self.workdir / "stack.env"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run(
            ["docker", "compose", "--env-file", str(self.env_file), *args],
            env=self.env,
            check=check,
            timeout=timeout,
        )

    def deploy(self) -> subprocess.CompletedProcess[str]:
        """The production deploy path, exactly as CI runs it on a server."""
        return run(["scripts/deploy.sh"], env=self.env, timeout=600)

    def url(self, path: str) -> str:
        return f"https://{self.domain}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the ACME CA's root only: a certificate from anywhere else fails."""
        assert self.root_ca is not None
        return ssl.create_default_context(cafile=str(self.root_ca))

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url(""), verify=self.ssl_context(), timeout=15, **kwargs)

    def psql(self, query: str) -> str:
        """A query's rows (unaligned, tuples only), by psql in the db container."""
        # .env.example's names; the session's settings do not override them.
        user = self.settings.get("POSTGRES_USER", "app")
        database = self.settings.get("POSTGRES_DB", "app")
        return self.compose(
            "exec", "-T", "db", "psql", "-U", user, "-d", database, "-At", "-c", query
        ).stdout

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(run(["docker", "inspect", container]).stdout)
        return data[0]

    def wait_until(
        self, what: str, predicate: Any, timeout: float = 60, interval: float = 0.5
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (httpx.HTTPError, OSError) as exc:
                last = exc
            time.sleep(interval)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def require_tool(name: str) -> str:
    """A tool from .venv (pinned in tests/stack/requirements.txt), else PATH."""
    venv_tool = REPO / ".venv" / "bin" / name
    path = str(venv_tool) if venv_tool.exists() else shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed (scripts/test-stack.sh installs it)")
    return path


def fetch_pebble_root(stack: Stack) -> Path:
    """Pebble makes a new root at every start: fetch this run's from its management API."""
    minica = stack.workdir / "pebble-minica.pem"
    minica.write_text(
        stack.compose("exec", "-T", "pebble", "cat", "/test/certs/pebble.minica.pem").stdout
    )
    host, port = stack.compose("port", "pebble", "15000").stdout.strip().rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(minica))
    root = stack.workdir / "acme-root.pem"

    def fetch() -> bool:
        with urllib.request.urlopen(
            f"https://{host}:{port}/roots/0", context=context, timeout=5
        ) as response:
            root.write_bytes(response.read())
        return True

    stack.wait_until("pebble's root certificate", fetch, timeout=30)
    return root


def production_secrets() -> dict[str, str]:
    """A production deploy's own values: fresh keys and passwords, and the
    example's database password (that the swarm ships it as a Docker secret is
    checked by test_17_swarm)."""
    return {
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TOTP_ENCRYPTION_KEYS": fernet_key(),
        "FIRST_SUPERUSER_EMAIL": "admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": secrets.token_urlsafe(18),
        "POSTGRES_PW": EXAMPLE_DB_PASSWORD,
    }


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if run(["docker", "info"], check=False).returncode != 0:
        pytest.fail("no Docker engine answers (tests/stack/offline/docker-engine.sh starts one)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    workdir = tmp_path_factory.mktemp("stack")
    workdir.chmod(0o755)
    settings = {
        # What a production deploy writes, with a test domain and a test ACME CA.
        **production_secrets(),
        "DOMAIN": DOMAIN,
        "CERT_RESOLVER": "letsencrypt",
        "ACME_EMAIL": "ops@example.com",
        "ACME_CA_SERVER": "https://pebble:14000/dir",
        "BIND_ADDRESS": "127.0.0.1",
        "PROXY_NETWORK": f"{PROJECT}-proxy",
        "PROXY_SUBNET": "198.18.201.0/24",
        "APP_IMAGE": "fastapi-stack-app:e2e",
        "LOCAL_CERTS_DIR": str(workdir / "certs"),
        "ENV_FILE": str(workdir / "stack.env"),
    }
    stack = Stack(workdir=workdir, settings=settings)
    stack.env_file.write_text(env_file_text(settings))
    stack.env = {
        **os.environ,
        "COMPOSE_FILE": COMPOSE_FILES,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "ENV_FILE": str(stack.env_file),
    }
    for image in pinned_images().values():
        if run(["docker", "image", "inspect", image], check=False).returncode != 0:
            pytest.fail(
                f"image {image} is missing (tests/stack/offline/standin-images.sh builds stand-ins)"
            )

    # Leftovers of an interrupted run (and its pebble root) must not leak in. Every
    # profile: `down` leaves the services of a profile not active (the mail catcher,
    # the OpenID provider) running otherwise.
    stack.compose("--profile", "*", "down", "--volumes", "--remove-orphans")
    try:
        started = time.monotonic()
        stack.compose("up", "--detach", "pebble")
        stack.root_ca = fetch_pebble_root(stack)
        shutil.copy(stack.root_ca, ARTIFACTS / "acme-root.pem")
        timed("pebble up, its root fetched", started)

        started = time.monotonic()
        stack.env["HEALTH_CHECK_CA_FILE"] = str(stack.root_ca)
        # Mounted into the app for OIDC_CA_FILE (compose.test.yaml); a later fetch
        # rewrites the same file, which the mount then shows.
        stack.env["TEST_ACME_ROOT"] = str(stack.root_ca)
        result = stack.deploy()
        (ARTIFACTS / "deploy.log").write_text(result.stdout + result.stderr)
        timed("scripts/deploy.sh: build, migrate, start, certificate, healthy over HTTPS", started)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps", check=False, timeout=60)
        (ARTIFACTS / "compose.log").write_text(logs.stdout + logs.stderr)
        if os.environ.get("STACK_KEEP") == "1":
            print(f"STACK_KEEP=1: left running; env file {stack.env_file}")
        else:
            started = time.monotonic()
            stack.compose(
                "--profile", "*", "down", "--volumes", "--remove-orphans", check=False, timeout=180
            )
            timed("down --volumes", started)


@pytest.fixture(scope="session")
def user(stack: Stack) -> dict[str, Any]:
    """One registered account for the session: email, password, tokens."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    with stack.client() as client:
        response = client.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "E2E Tester"},
        )
    assert response.status_code == 201, response.text
    return {"email": email, "password": PASSWORD, **response.json()}


@pytest.fixture(scope="module")
def configured_stack(stack: Stack) -> Stack:
    """The stack as the session deployed it: test_09 switches it to a local domain
    and the local CA, so a later module redeploys the session's settings first."""
    wanted = env_file_text(stack.settings)
    if stack.env_file.read_text() != wanted:
        started = time.monotonic()
        stack.env_file.write_text(wanted)
        stack.deploy()
        timed("redeployed with the session's settings (test domain, ACME)", started)
    return stack


def register_user(stack: Stack, label: str) -> dict[str, Any]:
    """A fresh account (its access token outlives any one module). Traefik's limiter
    on register may still be spending an earlier test's burst: wait it out."""
    email = f"{label}-{uuid.uuid4().hex[:12]}@example.com"

    def register() -> httpx.Response | None:
        with stack.client() as client:
            response = client.post(
                "/api/auth/register",
                json={"email": email, "password": PASSWORD, "full_name": label},
            )
        return None if response.status_code == 429 else response

    response: httpx.Response = stack.wait_until(
        "registration past Traefik's rate limit", register, timeout=90, interval=3
    )
    assert response.status_code == 201, response.text
    return {"email": email, "password": PASSWORD, **response.json()}
