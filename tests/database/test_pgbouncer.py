"""The app through a real PgBouncer in transaction mode (DB_POOLER_URL): many more
client connections than server connections, statements repeated past psycopg's
prepare threshold, and the transaction-scoped advisory locks (the login throttle's,
the sweep's) all behave as they do against Postgres itself."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.config import Settings
from app.models import utcnow
from app.services.maintenance import SweepCounts, sweep
from devtools.embedded_postgres import EmbeddedPostgres
from tests.conftest import CLIENT_ADDRESS, PASSWORD, app_with, bearer, client_at, register
from tests.pgbouncer import PgBouncer, pgbouncer_binary


@pytest.fixture(scope="module", autouse=True)
def pgbouncer_installed() -> None:
    """Missing, it fails loudly (never skips): `make test` installs it first."""
    if pgbouncer_binary() is None:
        pytest.fail("pgbouncer is not installed: `make test-tools` installs Debian's package")


SERVER_CONNECTIONS = 3
# Per worker pool sizes far above what PgBouncer holds to Postgres.
APP_POOLS = {"DB_POOL_SIZE": 12, "DB_MAX_OVERFLOW": 0, "DB_READ_POOL_SIZE": 12}
CONCURRENT_REQUESTS = 120
WRONG = {"username": "ada@example.com", "password": "not the password"}


@pytest.fixture(scope="module")
def pgbouncer(postgres: EmbeddedPostgres) -> Iterator[PgBouncer]:
    pooler = PgBouncer(postgres, pool_size=SERVER_CONNECTIONS, max_client_conn=200)
    pooler.start()
    yield pooler
    pooler.stop()


@pytest.fixture(scope="module")
def single_server_pgbouncer(postgres: EmbeddedPostgres) -> Iterator[PgBouncer]:
    """One server connection: every client's transactions run on it, one after another."""
    pooler = PgBouncer(postgres, pool_size=1, max_client_conn=50)
    pooler.start()
    yield pooler
    pooler.stop()


def pooled(pooler: PgBouncer, **overrides: Any) -> dict[str, Any]:
    return {"DB_POOLER_URL": pooler.address, **APP_POOLS, **overrides}


async def peak_server_connections(pooler: PgBouncer, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, await asyncio.to_thread(pooler.server_connections))
        await asyncio.sleep(0.01)
    return peak


def test_the_pools_connect_to_the_pooler_and_migrations_to_postgres(
    settings: Settings, pgbouncer: PgBouncer
) -> None:
    through = settings.model_copy(update={"DB_POOLER_URL": pgbouncer.address})
    assert (through.pool_url().host, through.pool_url().port) == ("127.0.0.1", pgbouncer.port)
    assert through.database_url() == settings.database_url()
    assert through.prepare_threshold is None
    assert settings.prepare_threshold == 5
    assert settings.pool_url() == settings.database_url()


async def test_many_concurrent_requests_share_a_few_server_connections(
    app: FastAPI, settings: Settings, pgbouncer: PgBouncer
) -> None:
    async with (
        app_with(settings, **pooled(pgbouncer)) as through,
        client_at(through, CLIENT_ADDRESS) as client,
    ):
        token = (await register(client))["access_token"]
        stop = asyncio.Event()
        watcher = asyncio.create_task(peak_server_connections(pgbouncer, stop))

        async def write_then_read(number: int) -> tuple[int, int]:
            created = await client.post(
                "/api/items/",
                json={"name": f"pooled {number}", "price": 1.5},
                headers=bearer(token),
            )
            listed = await client.get("/api/items/", headers=bearer(token))
            return created.status_code, listed.status_code

        answers = await asyncio.gather(
            *(write_then_read(number) for number in range(CONCURRENT_REQUESTS))
        )
        clients = len(await asyncio.to_thread(pgbouncer.admin, "SHOW CLIENTS"))
        stop.set()
        peak = await watcher
    async with app.state.engine.connect() as direct:
        stored = await direct.scalar(text("SELECT count(*) FROM items WHERE name LIKE 'pooled %'"))
    assert Counter(answers) == {(201, 200): CONCURRENT_REQUESTS}
    assert stored == CONCURRENT_REQUESTS
    # More clients than server connections, and never more servers than the pool.
    assert clients > SERVER_CONNECTIONS, clients
    assert 1 <= peak <= SERVER_CONNECTIONS, peak


def test_psycopgs_prepared_statements_break_through_a_transaction_pooler(
    single_server_pgbouncer: PgBouncer,
) -> None:
    """Why the setting exists: two clients whose transactions share one server
    connection both prepare psycopg's first statement name there."""
    postgres = single_server_pgbouncer.postgres
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": single_server_pgbouncer.port,
        "user": postgres.user,
        "password": postgres.password,
        "dbname": postgres.database,
        "autocommit": True,
    }
    with psycopg.connect(**options) as first, psycopg.connect(**options) as second:
        for number in range(6):
            first.execute("SELECT %s::int", (number,))
        for number in range(5):
            second.execute("SELECT %s::int", (number,))
        # The sixth run prepares the name the first client prepared there.
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            second.execute("SELECT %s::int", (5,))


async def test_statements_repeated_past_the_prepare_threshold_run_through_the_pooler(
    app: FastAPI, settings: Settings, single_server_pgbouncer: PgBouncer
) -> None:
    async with (
        app_with(settings, **pooled(single_server_pgbouncer)) as through,
        client_at(through, CLIENT_ADDRESS) as client,
    ):
        token = (await register(client))["access_token"]
        created = await client.post(
            "/api/items/", json={"name": "kept", "price": 2}, headers=bearer(token)
        )
        item = created.json()["id"]
        # Sequential and concurrent: each pooled connection runs each statement
        # well past 5 times, on the one server connection they all share.
        for _ in range(3):
            answers = await asyncio.gather(
                *(client.get(f"/api/items/{item}", headers=bearer(token)) for _ in range(15)),
                *(client.get("/api/users/me", headers=bearer(token)) for _ in range(15)),
                *(
                    client.patch(f"/api/items/{item}", json={"price": 3}, headers=bearer(token))
                    for _ in range(5)
                ),
            )
            assert {answer.status_code for answer in answers} == {200}
    assert single_server_pgbouncer.server_connections() <= 1


async def test_the_login_throttles_lock_counts_every_concurrent_failure_through_the_pooler(
    app: FastAPI, settings: Settings, pgbouncer: PgBouncer
) -> None:
    async with app_with(settings, **pooled(pgbouncer)) as through:
        async with client_at(through, CLIENT_ADDRESS) as owner:
            await register(owner)
        async with client_at(through, "198.51.100.66") as attacker:
            burst = await asyncio.gather(
                *(attacker.post("/api/token/", data=WRONG) for _ in range(30))
            )
            right = {"username": WRONG["username"], "password": PASSWORD}
            after = await attacker.post("/api/token/", data=right)
    limit = settings.LOGIN_MAX_FAILURES
    assert Counter(response.status_code for response in burst) == {401: limit, 429: 30 - limit}
    assert after.status_code == 429


async def test_of_two_sweeps_at_once_through_the_pooler_one_works_and_the_other_skips(
    app: FastAPI, settings: Settings, pgbouncer: PgBouncer
) -> None:
    now = utcnow()
    old = now - 2 * max(settings.LOGIN_FAILURE_WINDOW, settings.LOGIN_ACCOUNT_FAILURE_WINDOW)
    async with app.state.engine.begin() as connection:
        held = await connection.scalar(
            text("INSERT INTO login_failures (key, failed_at) VALUES ('k', :at) RETURNING id"),
            {"at": old},
        )
        await connection.execute(
            text("INSERT INTO login_failures (key, failed_at) VALUES ('k', :at)"), {"at": old}
        )
    async with app_with(settings, **pooled(pgbouncer)) as through:

        async def run_sweep() -> SweepCounts | None:
            async with through.state.session_factory() as db:
                return await sweep(db=db, settings=settings, now=now)

        # The first sweep takes the lock, then waits on a row held here (directly).
        async with app.state.engine.connect() as blocker:
            await blocker.execute(
                text("SELECT 1 FROM login_failures WHERE id = :id FOR UPDATE"), {"id": held}
            )
            first = asyncio.create_task(run_sweep())
            await wait_until_a_sweep_holds_the_lock_and_waits(app)
            second = await run_sweep()
            assert not first.done()
            await blocker.rollback()
        assert second is None
        assert await first == SweepCounts(sessions=0, refresh_tokens=0, login_failures=2)


async def wait_until_a_sweep_holds_the_lock_and_waits(app: FastAPI) -> None:
    for _ in range(500):
        async with app.state.engine.connect() as connection:
            holding = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid IN (SELECT pid FROM pg_locks WHERE NOT granted)"
                )
            )
        if holding:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no sweep took the lock and waited")
