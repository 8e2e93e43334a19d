"""The read pool (psycopg's pool under the hot reads): answers as the database
does, fails fast when the database cannot be reached, and recovers by itself."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from app.auth import tokens
from app.config import Settings
from app.database.reads import DATABASE_UNREACHABLE, DatabaseUnreachable, ReadPool
from devtools.embedded_postgres import free_port
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
