"""A real PgBouncer (Debian's package) in transaction mode in front of the suite's
Postgres, started and stopped by the tests that need one, like the embedded
Postgres itself (tests/conftest.py)."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import ClientCursor

from devtools.embedded_postgres import SYSTEM_USER, EmbeddedPostgres, free_port, runs_as_root

# Where Debian's package installs it (not on a non-root PATH).
PGBOUNCER_CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
START_TIMEOUT_SECONDS = 10.0
ADMIN_DATABASE = "pgbouncer"


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((path for path in PGBOUNCER_CANDIDATES if Path(path).is_file()), None)


def _quoted(value: str) -> str:
    """A userlist.txt field: in double quotes, a double quote doubled."""
    return '"' + value.replace('"', '""') + '"'


class PgBouncer:
    """pool_mode=transaction with `pool_size` server connections at most; clients
    authenticate with SCRAM, and so does PgBouncer to Postgres, with the password
    from a userlist written at start (as the stack's image does)."""

    def __init__(self, postgres: EmbeddedPostgres, *, pool_size: int, max_client_conn: int) -> None:
        self.postgres = postgres
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-tests-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.folder / "pgbouncer.log"

    def _write_config(self) -> Path:
        postgres = self.postgres
        userlist = self.folder / "userlist.txt"
        userlist.write_text(f"{_quoted(postgres.user)} {_quoted(postgres.password)}\n")
        config = self.folder / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={postgres.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.folder}\n"
            "pool_mode = transaction\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {userlist}\n"
            f"admin_users = {postgres.user}\n"
            f"default_pool_size = {self.pool_size}\n"
            f"max_db_connections = {self.pool_size}\n"
            f"max_client_conn = {self.max_client_conn}\n"
            f"logfile = {self.log_file}\n"
            f"pidfile = {self.folder / 'pgbouncer.pid'}\n"
        )
        return config

    def start(self) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed: make test-tools (Debian's pgbouncer)")
        config = self._write_config()
        command = [binary, str(config)]
        if runs_as_root():  # PgBouncer refuses to run as root
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command = [binary, "-u", SYSTEM_USER, str(config)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"pgbouncer exited at start: {error}{self.log()}")
            try:
                self.admin("SHOW VERSION")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not answer: {self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A command of PgBouncer's admin console (it speaks the simple query
        protocol only: a client-side cursor)."""
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.postgres.user,
            password=self.postgres.password,
            dbname=ADMIN_DATABASE,
            autocommit=True,
            cursor_factory=ClientCursor,
            connect_timeout=2,
        ) as connection:
            cursor = connection.execute(command)
            if cursor.description is None:
                return []
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def server_connections(self) -> int:
        """Server connections PgBouncer holds to Postgres now (any state)."""
        return len(self.admin("SHOW SERVERS"))
