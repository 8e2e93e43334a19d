"""Engine, session factory, the read-only engine and the readiness probe."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import ClauseElement, Row, event, text
from sqlalchemy.dialects.postgresql.psycopg import PGDialectAsync_psycopg
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]

READINESS_TIMEOUT_SECONDS = 2.0
# A pooled connection unused for this long is tested before it is handed out.
IDLE_BEFORE_PING_SECONDS = 1.0
_CHECKED_IN_AT = "checked_in_at"


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url(),
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        connect_args={"connect_timeout": settings.DB_CONNECT_TIMEOUT},
    )
    _ping_connections_that_sat_idle(engine)
    return engine


def _ping_connections_that_sat_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping costs a round trip on every checkout. A restarted
    database can only have cut off connections that sat idle through the restart
    unnoticed: those are tested, the ones in steady use are not. A connection in use
    when the database goes away fails its statement instead (a 503), and SQLAlchemy
    then discards every connection the pool held."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _note_checkin(_: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_BEFORE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: let the pool replace the connection
            raise DisconnectionError(str(exc)) from exc


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, its connections in autocommit while checked out: a read costs
    one round trip per statement, with no BEGIN or ROLLBACK around it. Reads only:
    nothing written through it is transactional."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


# The hottest reads skip most of SQLAlchemy's per-execution work (building the
# statement, its cache key and compilation): their Core statements are compiled
# once to the driver's SQL (named `%(name)s` parameters) and run with
# `exec_driver_sql`, which keeps SQLAlchemy's error handling (a lost connection
# is invalidated with the rest of the pool, and surfaces as a 503).


def driver_sql(statement: ClauseElement) -> str:
    """A Core statement compiled, once, to the driver's own SQL."""
    return str(statement.compile(dialect=PGDialectAsync_psycopg()))  # type: ignore[no-untyped-call]


async def fetch_one(reader: AsyncEngine, sql: str, values: dict[str, Any]) -> Row[Any] | None:
    async with reader.connect() as connection:
        return (await connection.exec_driver_sql(sql, values)).one_or_none()


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def open_session(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


async def database_answers(engine: AsyncEngine) -> bool:
    """True when a `SELECT 1` comes back within the readiness timeout."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception:  # any failure (refused, auth, timeout) means not ready
        return False
    return True
