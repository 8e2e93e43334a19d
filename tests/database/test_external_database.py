"""A managed database: a Postgres that accepts TLS only, verified as verify-full
with its CA. The app's pools, prestart (migrations included), the backups'
pg_dump and pg_restore connect; a wrong CA, a wrong host name and a client
without TLS are refused, and start-up says why in one line."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.config import Settings
from app.database.db import create_engine
from app.prestart import prepare
from scripts.stack import DUMP_ARGS, RESTORE_ARGS, database_client_environment, libpq_command
from scripts.stack import Settings as StackSettings
from tests.conftest import SPECIAL_PASSWORD, TEST_SECRET_KEY, TEST_TOTP_KEY, make_settings
from tests.database.tls_postgres import SERVER_NAME, TlsPostgres, start_tls_postgres

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def managed() -> Iterator[TlsPostgres]:
    root = Path(tempfile.mkdtemp(prefix="fastapi-stack-tls-"))
    root.chmod(0o755)
    database = start_tls_postgres(root, user="app", password=SPECIAL_PASSWORD, database="managed")
    yield database
    database.server.stop()


def managed_settings(managed: TlsPostgres, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "POSTGRES_URL": f"{SERVER_NAME}:{managed.server.port}",
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(managed.ca_file),
        **overrides,
    }
    return make_settings(managed.server, **values)


@pytest.fixture(scope="module")
async def migrated(managed: TlsPostgres) -> Settings:
    settings = managed_settings(managed)
    await prepare(settings, wait_seconds=10)
    return settings


async def test_prestart_migrates_over_verified_tls(migrated: Settings) -> None:
    engine = create_engine(migrated)
    try:
        async with engine.connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            tls = await connection.scalar(
                text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            )
    finally:
        await engine.dispose()
    assert version
    assert tls is True


async def test_both_pools_of_the_app_serve_over_verified_tls(migrated: Settings) -> None:
    from app.main import create_app

    application = create_app(migrated)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            registered = await http.post(
                "/api/auth/register",
                json={"email": "tls@example.com", "password": "correct horse battery"},
            )
            assert registered.status_code == 201, registered.text
            token = registered.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            created = await http.post(
                "/api/items/", json={"name": "over TLS", "price": 1}, headers=headers
            )
            assert created.status_code == 201, created.text
            listed = await http.get("/api/items/", headers=headers)  # the read pool
            assert listed.status_code == 200, listed.text
        async with application.state.engine.connect() as connection:
            plain = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                    "WHERE datname = current_database() AND NOT ssl"
                )
            )
    assert "over TLS" in listed.text
    assert plain == 0


async def test_a_certificate_from_another_ca_stops_prestart_at_once(
    managed: TlsPostgres,
) -> None:
    settings = managed_settings(managed, POSTGRES_SSLROOTCERT=str(managed.other_ca_file))
    with pytest.raises(SystemExit, match="not signed by the CA in POSTGRES_SSLROOTCERT"):
        await prepare(settings, wait_seconds=30)


async def test_a_certificate_for_another_host_name_stops_prestart_at_once(
    managed: TlsPostgres,
) -> None:
    # The certificate names `localhost`; the same server by its address is refused.
    settings = managed_settings(managed, POSTGRES_URL=f"127.0.0.1:{managed.server.port}")
    with pytest.raises(SystemExit, match="certificate is for another host name") as refused:
        await prepare(settings, wait_seconds=30)
    assert 'does not match host name "127.0.0.1"' in str(refused.value)


async def test_a_client_without_tls_is_refused_by_the_server(managed: TlsPostgres) -> None:
    settings = managed_settings(managed, POSTGRES_SSLMODE="disable", POSTGRES_SSLROOTCERT="")
    with pytest.raises(SystemExit, match="accepts TLS connections only") as refused:
        await prepare(settings, wait_seconds=30)
    assert "no encryption" in str(refused.value)


def test_prestart_says_in_one_line_why_the_certificate_is_refused(
    managed: TlsPostgres,
) -> None:
    """As the container runs it: no traceback, one line naming the setting."""
    environment = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": TEST_SECRET_KEY,
        "TOTP_ENCRYPTION_KEYS": TEST_TOTP_KEY,
        "POSTGRES_URL": f"{SERVER_NAME}:{managed.server.port}",
        "POSTGRES_USER": "app",
        "POSTGRES_PW": SPECIAL_PASSWORD,
        "POSTGRES_DB": "managed",
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(managed.other_ca_file),
        "FIRST_SUPERUSER_EMAIL": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.prestart"],
        cwd=tempfile.gettempdir(),  # no .env of a developer
        env=environment | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "not signed by the CA in POSTGRES_SSLROOTCERT" in result.stderr.strip().splitlines()[-1]


def test_production_refuses_an_unverified_external_database(managed: TlsPostgres) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.prestart"],
        cwd=tempfile.gettempdir(),
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ENVIRONMENT": "production",
            "SECRET_KEY": TEST_SECRET_KEY,
            "TOTP_ENCRYPTION_KEYS": TEST_TOTP_KEY,
            "POSTGRES_URL": "mydb.example.com:5432",
            "POSTGRES_PW": SPECIAL_PASSWORD,
            "POSTGRES_SSLMODE": "require",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "POSTGRES_SSLMODE=require does not verify who answers" in result.stderr


def run_libpq_tool(
    managed: TlsPostgres, args: tuple[str, ...], **options: Any
) -> subprocess.CompletedProcess[bytes]:
    """pg_dump or pg_restore as `make backup`/`make restore` run them for a managed
    database: its arguments, and libpq's environment built by scripts/stack.py
    (in the db-client container the CA is mounted; here it is the test's file)."""
    stack_settings = StackSettings(
        {
            "POSTGRES_URL": f"{SERVER_NAME}:{managed.server.port}",
            "POSTGRES_USER": "app",
            "POSTGRES_PW": SPECIAL_PASSWORD,
            "POSTGRES_DB": "managed",
            "POSTGRES_SSLMODE": "verify-full",
        }
    )
    environment = database_client_environment(stack_settings, str(managed.ca_file))
    return subprocess.run(
        libpq_command(stack_settings, *args),
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        timeout=60,
        check=False,
        **options,
    )


async def test_backup_and_restore_round_trip_over_verified_tls(
    managed: TlsPostgres, migrated: Settings, tmp_path: Path
) -> None:
    engine = create_engine(migrated)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS backup_probe (word text)"))
            await connection.execute(text("INSERT INTO backup_probe VALUES ('kept')"))
        dump = run_libpq_tool(managed, DUMP_ARGS)
        assert dump.returncode == 0, dump.stderr.decode()
        (tmp_path / "backup.dump").write_bytes(dump.stdout)
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM backup_probe"))
        with (tmp_path / "backup.dump").open("rb") as stdin:
            restore = run_libpq_tool(managed, RESTORE_ARGS, stdin=stdin)
        assert restore.returncode == 0, restore.stderr.decode()
        async with engine.connect() as connection:
            words = (await connection.scalars(text("SELECT word FROM backup_probe"))).all()
    finally:
        await engine.dispose()
    assert words == ["kept"]


def test_backup_with_the_wrong_ca_is_refused(managed: TlsPostgres) -> None:
    other = TlsPostgres(managed.server, managed.other_ca_file, managed.ca_file)
    dump = run_libpq_tool(other, DUMP_ARGS)
    assert dump.returncode != 0
    assert b"certificate verify failed" in dump.stderr
