"""Run once before the web workers start: wait for the database, migrate, seed.

`python -m app.prestart` — the container's entrypoint and `make dev` call it.
"""

import asyncio
import logging
import re
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, get_settings
from app.database.db import create_engine, create_session_factory, database_problem
from app.services.users import ensure_superuser

logger = logging.getLogger("app.prestart")

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


# Refusals no wait will cure. libpq reports a refused login as text only (no
# SQLSTATE reaches the client), in the server's language: English in the image.
LOGIN_REFUSED = "password authentication failed"
NO_SUCH_DATABASE = re.compile(r'database "[^"]*" does not exist')
LOGIN_REFUSED_ADVICE = (
    "the database refused POSTGRES_USER/POSTGRES_PW from .env ({error}). A database "
    "volume keeps the password it was created with: put that password back in .env, "
    "or change it in the database first (docs/operations.md, Rotating secrets)."
)


async def wait_for_database(engine: AsyncEngine, *, timeout_seconds: float) -> None:
    """Until the database answers; a refused login ends the wait at once."""
    deadline = time.monotonic() + timeout_seconds
    while (problem := await database_problem(engine)) is not None:
        if LOGIN_REFUSED in problem or NO_SUCH_DATABASE.search(problem):
            raise SystemExit(LOGIN_REFUSED_ADVICE.format(error=problem))
        if time.monotonic() > deadline:
            raise SystemExit(f"database did not answer within {timeout_seconds:.0f} s: {problem}")
        logger.info("waiting for the database… (%s)", problem)
        await asyncio.sleep(1)


def migrate(settings: Settings) -> None:
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = settings.database_url()
    command.upgrade(config, "head")


async def prepare(settings: Settings, *, wait_seconds: float = 60) -> None:
    engine = create_engine(settings, direct=True)
    try:
        await wait_for_database(engine, timeout_seconds=wait_seconds)
        await asyncio.to_thread(migrate, settings)
        async with create_session_factory(engine)() as db:
            if await ensure_superuser(db=db, settings=settings):
                logger.info("created the first superuser %s", settings.FIRST_SUPERUSER_EMAIL)
    finally:
        await engine.dispose()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(prepare(settings))


if __name__ == "__main__":
    main()
