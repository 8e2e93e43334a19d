"""gunicorn.conf.py preloads the app in the master and forks the workers from it.
Whatever must not cross a fork (database connections, sockets, threads) is then
each worker's own, opened after the fork by the lifespan: checked here on the real
gunicorn (gunicorn.conf.py, 2 uvicorn workers) against the suite's Postgres, by
reading each process's sockets in /proc and the connections Postgres sees."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from app.config import Settings
from devtools.embedded_postgres import EmbeddedPostgres, free_port
from tests.test_house_rules import LAZILY_IMPORTED

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
READ_POOL_SIZE = 2
START_TIMEOUT_SECONDS = 60
LISTEN = "0A"  # /proc/net/tcp's state column
ESTABLISHED = "01"


@dataclass(frozen=True)
class TcpSocket:
    inode: int
    local_port: int
    remote_port: int
    state: str


def tcp_sockets(pid: int) -> list[TcpSocket]:
    """The TCP sockets among the process's open files: its fds' socket inodes,
    looked up in its network namespace's /proc/PID/net/tcp and tcp6."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target.removeprefix("socket:[").removesuffix("]")))
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            inode = int(fields[9])
            if inode in inodes:
                found.append(
                    TcpSocket(
                        inode=inode,
                        local_port=int(fields[1].rsplit(":", 1)[1], 16),
                        remote_port=int(fields[2].rsplit(":", 1)[1], 16),
                        state=fields[3],
                    )
                )
    return found


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@dataclass(frozen=True)
class Gunicorn:
    master: int
    workers: list[int]
    port: int
    drain_probe_port: int
    database_port: int
    metrics_port: int

    def database_connections(self, pid: int) -> list[TcpSocket]:
        return [
            found
            for found in tcp_sockets(pid)
            if found.remote_port == self.database_port and found.state == ESTABLISHED
        ]


def server_environment(
    postgres: EmbeddedPostgres, port: int, drain_probe_port: int, metrics_port: int
) -> dict[str, str]:
    """The suite's settings (the `settings` fixture put them in the environment),
    served as the image serves the app."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "POSTGRES_URL": f"127.0.0.1:{postgres.port}",
        "WEB_CONCURRENCY": str(WORKERS),
        "DB_READ_POOL_SIZE": str(READ_POOL_SIZE),
        "BCRYPT_ROUNDS": "4",
        "ACCESS_LOG": "off",
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
        "DRAIN_PROBE_PORT": str(drain_probe_port),
        "DRAIN_SECONDS": "0",
        "METRICS_PORT": str(metrics_port),
    }


@pytest.fixture(scope="module")
def gunicorn(
    settings: Settings, postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    """`gunicorn app.main:app` in a folder holding gunicorn.conf.py and no .env, as
    in the image; yielded once each worker has opened its read pool."""
    workdir = tmp_path_factory.mktemp("srv")
    shutil.copy(ROOT / "gunicorn.conf.py", workdir / "gunicorn.conf.py")
    port, drain_probe_port, metrics_port = free_port(), free_port(), free_port()
    log_file = workdir / "gunicorn.log"
    with log_file.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "app.main:app"],
            cwd=workdir,
            env=server_environment(postgres, port, drain_probe_port, metrics_port),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server = Gunicorn(process.pid, [], port, drain_probe_port, postgres.port, metrics_port)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, f"gunicorn exited: {log_file.read_text()}"
            assert time.monotonic() < deadline, f"not up in time: {log_file.read_text()}"
            workers = [child.pid for child in psutil.Process(process.pid).children()]
            if len(workers) == WORKERS and all(
                len(server.database_connections(pid)) >= READ_POOL_SIZE for pid in workers
            ):
                break
            time.sleep(0.2)
        answer = httpx.get(f"http://127.0.0.1:{port}/api/health/ready", timeout=10)
        assert answer.status_code == 200, answer.text
        yield Gunicorn(
            process.pid, sorted(workers), port, drain_probe_port, postgres.port, metrics_port
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_each_worker_opens_its_own_database_connections(
    gunicorn: Gunicorn, settings: Settings
) -> None:
    ports = {
        pid: {c.local_port for c in gunicorn.database_connections(pid)} for pid in gunicorn.workers
    }
    first, second = ports.values()
    assert first, "each worker has connections of its own"
    assert second
    assert not first & second, "no connection is shared between the workers"
    # Postgres serves each of them as a connection of its own (a backend per port).
    engine = create_engine(settings.database_url().set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            backends: dict[int, int] = dict(
                connection.execute(
                    text(
                        "SELECT client_port, pid FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    for pid, worker_ports in ports.items():
        assert worker_ports <= backends.keys(), f"worker {pid}: {worker_ports - backends.keys()}"


def test_the_master_holds_no_database_connection_and_starts_no_thread(gunicorn: Gunicorn) -> None:
    """The master imported the app (preload_app) and holds nothing of it but
    memory: its only sockets are gunicorn's listener, the drain probe's and the
    metrics', its only threads its own and those two servers' (gunicorn.conf.py)."""
    # The app's database driver is mapped in the master: it imported the app.
    assert "psycopg_binary" in Path(f"/proc/{gunicorn.master}/maps").read_text()
    sockets = tcp_sockets(gunicorn.master)
    assert gunicorn.database_connections(gunicorn.master) == []
    assert {(s.local_port, s.state) for s in sockets} == {
        (gunicorn.port, LISTEN),
        (gunicorn.drain_probe_port, LISTEN),
        (gunicorn.metrics_port, LISTEN),
    }
    assert thread_count(gunicorn.master) == 3


def test_a_worker_inherits_no_socket_from_the_master_but_the_listener(gunicorn: Gunicorn) -> None:
    listener = {s.inode for s in tcp_sockets(gunicorn.master) if s.local_port == gunicorn.port}
    master = {s.inode for s in tcp_sockets(gunicorn.master)}
    for pid in gunicorn.workers:
        assert {s.inode for s in tcp_sockets(pid)} & master == listener


IMPORT_PROGRAM = """
import json, os, sys, threading

def sockets():
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found

before = sockets()
import app.main
print(json.dumps({
    "new_sockets": sorted(sockets() - before),
    "threads": len(os.listdir("/proc/self/task")),
    "python_threads": threading.active_count(),
    "lazy_libraries_loaded": sorted(set(sys.argv[1:]) & set(sys.modules)),
}))
"""


# Libraries only some requests need, imported by them (tests/test_house_rules.py
# holds which module imports each), and what py_webauthn brings along: in the
# master they would add their size to every container (docs/performance.md, memory).
LAZY_LIBRARIES = [
    *LAZILY_IMPORTED,
    "cbor2",
    "OpenSSL",
    "pyasn1",
    # Tracing's, when it is off (tests/test_house_rules.py, OTEL_SDK_PARTS).
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
]


def test_importing_the_app_opens_no_socket_and_starts_no_thread_nor_lazy_library(
    settings: Settings, tmp_path: Path
) -> None:
    """What the master does with preload_app: anything opened here would be
    shared by every worker forked from it, and a thread would not survive the fork
    (an event loop opens sockets too: its self-pipe). And the libraries kept for
    the requests that need them stay out."""
    shown = subprocess.run(
        [sys.executable, "-c", IMPORT_PROGRAM, *LAZY_LIBRARIES],
        cwd=tmp_path,  # no .env
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found = json.loads(shown.stdout.splitlines()[-1])
    assert found == {
        "new_sockets": [],
        "threads": 1,
        "python_threads": 1,
        "lazy_libraries_loaded": [],
    }
