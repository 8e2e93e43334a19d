"""Readiness: whether this process can serve requests."""

from sqlalchemy.ext.asyncio import AsyncEngine

from app.database.db import database_answers, schema_lag
from app.exceptions import ServiceUnavailable


async def check_ready(*, engine: AsyncEngine) -> None:
    """Raises ServiceUnavailable when the database does not answer in time, or its
    schema is behind this release (a rolling update whose migrations have not run
    yet): Docker then keeps the replica out of rotation."""
    if not await database_answers(engine):
        raise ServiceUnavailable("Database unavailable")
    if (lag := await schema_lag(engine)) is not None:
        raise ServiceUnavailable(f"Not ready: {lag}")
