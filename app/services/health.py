"""Readiness: whether this process can serve requests."""

from sqlalchemy.ext.asyncio import AsyncEngine

from app.database.db import database_answers
from app.exceptions import ServiceUnavailable


async def check_ready(*, engine: AsyncEngine) -> None:
    """Raises ServiceUnavailable when the database does not answer in time."""
    if not await database_answers(engine):
        raise ServiceUnavailable("Database unavailable")
