"""The read pool (psycopg's pool under the hot reads): answers as the database
does, fails fast when the database cannot be reached, and recovers by itself."""

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from app.auth import tokens
from app.config import Settings
from app.database.reads import DATABASE_UNREACHABLE, DatabaseUnreachable, ReadPool
from devtools.embedded_postgres import EmbeddedPostgres, free_port
from tests.conftest import app_with, bearer


async def test_reads_run_in_autocommit_with_rows_as_dicts(settings: Settings) -> None:
    reader = ReadPool(settings)
    await reader.open()
    try:
        row = await reader.fetch_one(
            "SELECT current_setting('transaction_isolation') AS isolation, %(n)s::int AS n",
            {"n": 7},
        )
        async with reader.connection() as connection:
            in_transaction = connection.info.transaction_status
    finally:
        await reader.close()
    assert row == {"isolation": "read committed", "n": 7}
    # Nothing opened a transaction: no BEGIN went out, so none needs a ROLLBACK.
    assert in_transaction == psycopg.pq.TransactionStatus.IDLE


async def test_an_unreachable_database_fails_within_the_connect_timeout(
    settings: Settings,
) -> None:
    """Not after DB_POOL_TIMEOUT: the pool knows no connection has succeeded."""
    nowhere = settings.model_copy(
        update={
            "POSTGRES_URL": f"127.0.0.1:{free_port()}",
            "DB_POOL_TIMEOUT": 30.0,
            "DB_CONNECT_TIMEOUT": 1,
        }
    )
    reader = ReadPool(nowhere)
    await reader.open()
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnreachable, match=DATABASE_UNREACHABLE):
            await reader.fetch_one("SELECT 1", {})
        waited = time.monotonic() - started
    finally:
        await reader.close()
    assert 0.9 < waited < 3, waited


async def test_an_app_whose_database_is_unreachable_answers_503_fast(settings: Settings) -> None:
    token = tokens.encode_token(
        settings=settings,
        token_type=tokens.TokenType.ACCESS,
        user_id=1,
        session_id=uuid.uuid4(),
        jti=uuid.uuid4(),
        issued_at=datetime.now(UTC),
        lifetime=timedelta(minutes=5),
    )
    overrides = {
        "POSTGRES_URL": f"127.0.0.1:{free_port()}",
        "DB_POOL_TIMEOUT": 30.0,
        "DB_CONNECT_TIMEOUT": 1,
    }
    async with app_with(settings, **overrides) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            started = time.monotonic()
            answer = await client.get("/api/users/me", headers=bearer(token))
            waited = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.json() == {"detail": "Database unavailable; retry shortly"}
    assert answer.headers["retry-after"] == "5"
    assert waited < 3, waited


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own, to stop and start again (in a folder the server's
    unprivileged user can reach, as tests/conftest.py's)."""
    root = Path(tempfile.mkdtemp(prefix="fastapi-stack-outage-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(
        root / "pgdata", port=free_port(), user="app", password="outage", database="outage"
    )
    server.start()
    yield server
    if server.is_running():
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


async def test_after_an_outage_reads_are_served_again_within_a_second(
    settings: Settings, own_postgres: EmbeddedPostgres
) -> None:
    """The pool does not leave its lost connections to a growing backoff (by the end of
    a long outage, seconds between attempts): the first request after the database is
    back connects at once."""
    reader = ReadPool(
        settings.model_copy(
            update={
                "POSTGRES_URL": f"127.0.0.1:{own_postgres.port}",
                "POSTGRES_USER": "app",
                "POSTGRES_PW": SecretStr("outage"),
                "POSTGRES_DB": "outage",
                "DB_READ_POOL_SIZE": 4,
            }
        )
    )
    await reader.open()
    try:
        assert await reader.fetch_one("SELECT 1 AS one", {}) == {"one": 1}
        await asyncio.to_thread(own_postgres.stop)
        outage_ends = time.monotonic() + 8
        while time.monotonic() < outage_ends:  # requests keep coming during the outage
            with pytest.raises(psycopg.OperationalError):
                await reader.fetch_one("SELECT 1 AS one", {})
            await asyncio.sleep(0.5)
        await asyncio.to_thread(own_postgres.start)
        back = time.monotonic()
        while True:
            try:
                assert await reader.fetch_one("SELECT 1 AS one", {}) == {"one": 1}
                break
            except psycopg.OperationalError:
                assert time.monotonic() - back < 1.5, "still failing after the database came back"
                await asyncio.sleep(0.05)
        recovered_after = time.monotonic() - back
        # And every request after that is served: the pool fills again on demand.
        answers = await asyncio.gather(*(reader.fetch_one("SELECT 1 AS one", {}) for _ in range(8)))
    finally:
        await reader.close()
    assert recovered_after < 1.0, recovered_after
    assert answers == [{"one": 1}] * 8
