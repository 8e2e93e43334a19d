"""Run once before the web workers start: wait for the database, migrate, seed.

`python -m app.prestart` — the container's entrypoint and `make dev` call it.
"""

import asyncio
import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, get_settings
from app.database.db import create_engine, create_session_factory, database_answers
from app.services.users import ensure_superuser

logger = logging.getLogger("app.prestart")

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


async def wait_for_database(engine: AsyncEngine, *, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not await database_answers(engine):
        if time.monotonic() > deadline:
            raise SystemExit(f"database did not answer within {timeout_seconds:.0f} s")
        logger.info("waiting for the database…")
        await asyncio.sleep(1)


def migrate(settings: Settings) -> None:
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = settings.database_url()
    command.upgrade(config, "head")


async def prepare(settings: Settings, *, wait_seconds: float = 60) -> None:
    engine = create_engine(settings)
    try:
        await wait_for_database(engine, timeout_seconds=wait_seconds)
        await asyncio.to_thread(migrate, settings)
        async with create_session_factory(engine)() as session:
            if await ensure_superuser(session=session, settings=settings):
                logger.info("created the first superuser %s", settings.FIRST_SUPERUSER_EMAIL)
    finally:
        await engine.dispose()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(prepare(settings))


if __name__ == "__main__":
    main()
