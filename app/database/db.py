"""The engine and session factory for transactions, a flush that turns a
unique constraint's refusal into the domain's error, and the readiness probe.
Reads go through app/database/reads.py."""

import asyncio
import time
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.database.schema_version import schema_problem
from app.exceptions import DomainError
from app.settings.database import DEFAULT_PREPARE_THRESHOLD

SessionFactory = async_sessionmaker[AsyncSession]

READINESS_TIMEOUT_SECONDS = 2.0
# A pooled connection unused for this long is tested before it is handed out.
IDLE_BEFORE_PING_SECONDS = 1.0
_IDLE_SINCE = "idle_since"


class ConnectionHealth:
    """Which pooled connections to test before use, for both of a worker's pools.

    Pinging on every checkout (SQLAlchemy's pre-ping) costs a round trip per
    request. A restarted database can only have cut off connections that sat idle
    through the restart unnoticed, and once one connection is found lost, any
    connection idle since before then may be lost too: those are tested, the ones
    in steady use since are not. A connection in use when the database goes away
    fails its statement instead (a 503)."""

    def __init__(self) -> None:
        self._last_loss = float("-inf")

    def lost_one(self) -> None:
        self._last_loss = time.monotonic()

    def needs_ping(self, idle_since: float) -> bool:
        idle = time.monotonic() - idle_since >= IDLE_BEFORE_PING_SECONDS
        return idle or idle_since <= self._last_loss


def create_engine(
    settings: Settings, health: ConnectionHealth | None = None, *, direct: bool = False
) -> AsyncEngine:
    """Through the pooler when DB_POOLER_URL names one, unless `direct` (prestart:
    it runs before the pooler and migrates with a session-level lock)."""
    url, prepare_threshold = (
        (settings.database_url(), DEFAULT_PREPARE_THRESHOLD)
        if direct
        else (settings.pool_url(), settings.prepare_threshold)
    )
    engine = create_async_engine(
        url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        connect_args={
            "connect_timeout": settings.DB_CONNECT_TIMEOUT,
            "prepare_threshold": prepare_threshold,
        },
    )
    _ping_suspect_connections(engine, health or ConnectionHealth())
    return engine


def _ping_suspect_connections(engine: AsyncEngine, health: ConnectionHealth) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _note_checkin(_: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_suspect(dbapi_connection: Any, record: Any, _: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or not health.needs_ping(idle_since):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: let the pool replace the connection
            health.lost_one()
            raise DisconnectionError(str(exc)) from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def _note_loss(context: Any) -> None:
        if context.is_disconnect:
            health.lost_one()


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def flush_unless_taken(db: AsyncSession, taken: type[DomainError]) -> None:
    """Flush; if a unique constraint refuses it (another row holds the value,
    perhaps since a moment ago), roll back and raise `taken`."""
    try:
        await db.flush()
    except IntegrityError as exc:
        await db.rollback()
        if isinstance(exc.orig, UniqueViolation):
            raise taken() from exc
        raise


async def database_problem(engine: AsyncEngine) -> str | None:
    """None when a `SELECT 1` comes back within the readiness timeout, else why not."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"no answer within {READINESS_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # any failure (refused, auth, timeout) means not ready
        cause = getattr(exc, "orig", None) or exc  # the driver's words, not SQLAlchemy's
        return " ".join(str(cause).split())
    return None


async def database_answers(engine: AsyncEngine) -> bool:
    return await database_problem(engine) is None


async def schema_lag(engine: AsyncEngine) -> str | None:
    """None when this release can serve the database's schema, else why not
    (app/database/schema_version.py)."""
    async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
        async with engine.connect() as connection:
            return await schema_problem(connection)
