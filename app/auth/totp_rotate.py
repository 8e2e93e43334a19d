"""Encrypt every stored TOTP secret again with the first TOTP_ENCRYPTION_KEYS key.

`python -m app.auth.totp_rotate` (in the container: `docker compose exec app
python -m app.auth.totp_rotate`), after a new key was put first and deployed,
before the old one is dropped (docs/operations.md, "Rotating secrets"). Safe to
run again, and while the app serves: a secret set up meanwhile is left alone.
"""

import asyncio
import logging

from app.config import Settings, get_settings
from app.database.db import create_engine, create_session_factory
from app.services.second_factor import reencrypt_secrets

logger = logging.getLogger("app.auth.totp_rotate")


async def rotate(settings: Settings) -> int:
    """How many secrets were encrypted again."""
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as db:
            return await reencrypt_secrets(db=db, settings=settings)
    finally:
        await engine.dispose()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(levelname)s %(name)s: %(message)s")
    count = asyncio.run(rotate(settings))
    logger.info("re-encrypted %d TOTP secrets with the first TOTP_ENCRYPTION_KEYS key", count)


if __name__ == "__main__":
    main()
