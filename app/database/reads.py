"""The read path: psycopg's own pool, without SQLAlchemy between.

Every authenticated request reads the caller (and most then read a page); writes go
through SQLAlchemy sessions (app/database/db.py). Measured here, a pooled
checkout plus one statement costs ~270 µs through SQLAlchemy's engine and ~95 µs
through psycopg's pool, the difference being SQLAlchemy's connection, cursor and
result objects: on a two-core machine that is a third of an item list's time.
The statements are still written with SQLAlchemy Core, compiled once
(`driver_sql`).

What SQLAlchemy did for these reads is kept here: autocommit connections (a read
is one round trip, no BEGIN or ROLLBACK), a connection idle long enough to have
missed a database restart is pinged before use, one lost connection makes every
connection returned before it suspect (SQLAlchemy's pool invalidation), and a
database that cannot be reached fails requests within the connect timeout instead
of the pool timeout. A failure surfaces as psycopg's OperationalError or the
pool's PoolTimeout, both answered 503 (app/exceptions.py).
"""

import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.psycopg import PGDialectAsync_psycopg

from app.config import Settings
from app.database.db import ConnectionHealth
from app.observability import metrics

ReadConnection = psycopg.AsyncConnection[DictRow]
BACKGROUND_RECONNECT_SECONDS = 1.0
DATABASE_UNREACHABLE = "no connection to the database could be opened"


class DatabaseUnreachable(psycopg.OperationalError):
    """No connection in time while none could be opened: the database is down, not
    busy (a plain PoolTimeout)."""


def driver_sql(statement: ClauseElement) -> str:
    """A Core statement compiled, once, to psycopg's own SQL (`%(name)s` parameters)."""
    return str(statement.compile(dialect=PGDialectAsync_psycopg()))  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class ReadPoolStats:
    in_use: int
    waiting: int


class ReadPool:
    def __init__(self, settings: Settings, health: ConnectionHealth | None = None) -> None:
        self._health = health or ConnectionHealth()
        self._pool_timeout = settings.DB_POOL_TIMEOUT
        self._connect_timeout = float(settings.DB_CONNECT_TIMEOUT)
        self._idle_since: weakref.WeakKeyDictionary[ReadConnection, float] = (
            weakref.WeakKeyDictionary()
        )
        # Until a connection succeeds (at start, and after a loss), waiting for one
        # is cut short.
        self._unreachable = True
        self._pool = AsyncConnectionPool[ReadConnection](
            settings.pool_url(driver="postgresql").render_as_string(hide_password=False),
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": settings.DB_CONNECT_TIMEOUT,
                "prepare_threshold": settings.prepare_threshold,
            },
            min_size=settings.DB_READ_POOL_SIZE,
            max_size=settings.DB_READ_POOL_SIZE,
            timeout=settings.DB_POOL_TIMEOUT,
            # A lost connection is retried in the background for this long only,
            # then left to the next request, which connects at once: the pool's
            # retries back off (1, 2, 4… s), and after a long outage would keep
            # reads failing for seconds after the database is back.
            reconnect_timeout=BACKGROUND_RECONNECT_SECONDS,
            configure=self._connected,
            reset=self._returned,
            name="reads",
            open=False,
        )

    async def open(self) -> None:
        """Connections are opened in the background: the app starts even when the
        database is not up yet (it answers 503 until it is)."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    def stats(self) -> ReadPoolStats:
        stats = self._pool.get_stats()
        return ReadPoolStats(
            in_use=stats.get("pool_size", 0) - stats.get("pool_available", 0),
            waiting=stats.get("requests_waiting", 0),
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[ReadConnection]:
        unreachable = self._unreachable
        wait_seconds = self._connect_timeout if unreachable else self._pool_timeout
        try:
            connection = await self._working_connection(wait_seconds)
        except PoolTimeout as exc:
            if unreachable:  # not busy: down
                raise DatabaseUnreachable(DATABASE_UNREACHABLE) from exc
            metrics.POOL_TIMEOUTS.labels("reads").inc()
            raise
        try:
            yield connection
        except psycopg.OperationalError:
            if connection.broken:  # not, say, a statement timeout
                self._connection_lost()
            raise
        finally:
            await self._pool.putconn(connection)  # a broken one is replaced

    async def fetch_one(self, sql: str, values: dict[str, Any]) -> DictRow | None:
        async with self.connection() as connection:
            return await (await connection.execute(sql, values)).fetchone()

    async def fetch_all(self, sql: str, values: dict[str, Any]) -> list[DictRow]:
        async with self.connection() as connection:
            return await (await connection.execute(sql, values)).fetchall()

    def _connection_lost(self) -> None:
        self._health.lost_one()
        self._unreachable = True

    async def _connected(self, connection: ReadConnection) -> None:
        self._unreachable = False
        self._idle_since[connection] = time.monotonic()

    async def _returned(self, connection: ReadConnection) -> None:
        self._idle_since[connection] = time.monotonic()

    async def _working_connection(self, wait_seconds: float) -> ReadConnection:
        """A pooled connection, pinged first if it sat idle or was returned before a
        connection was lost; those in steady use since are handed out untested.
        (Done here, not as the pool's `check`: the pool waits a growing backoff
        between failed checks, and after a restart every pooled connection fails.)
        Each failed ping discards one connection, and those opened since the
        loss are not pinged, so this ends."""
        while True:
            connection = await self._pool.getconn(wait_seconds)
            if not self._health.needs_ping(self._idle_since[connection]):
                return connection
            try:
                await connection.execute("")
            except psycopg.OperationalError:
                self._connection_lost()
                await self._pool.putconn(connection)  # broken: the pool replaces it
                continue
            return connection
