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
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import SettingFileError, Settings, get_settings
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

# TLS refusals, in libpq's words: the certificate is not from POSTGRES_SSLROOTCERT's
# CA, it does not name the host connected to, the CA file is unusable, or the
# server wants TLS this client did not offer (pg_hba.conf: hostssl only).
TLS_REFUSALS = {
    "certificate verify failed": (
        "the database's TLS certificate is not signed by the CA in POSTGRES_SSLROOTCERT "
        "({error}): give the CA bundle of your database provider"
    ),
    "does not match host name": (
        "the database's TLS certificate is for another host name ({error}): set "
        "POSTGRES_URL to the name the certificate holds (the provider's endpoint, not "
        "its IP address)"
    ),
    "root certificate file": (
        "POSTGRES_SSLROOTCERT cannot be used ({error}): give the path of a PEM file "
        "of CA certificates"
    ),
    "no encryption": (
        "the database accepts TLS connections only ({error}): set "
        "POSTGRES_SSLMODE=verify-full and POSTGRES_SSLROOTCERT"
    ),
    "server does not support SSL": (
        "POSTGRES_SSLMODE requires TLS and the database does not offer it ({error})"
    ),
}


def tls_refusal(problem: str) -> str | None:
    """The advice for a TLS refusal (no wait cures one), or None."""
    for words, advice in TLS_REFUSALS.items():
        if words in problem:
            return advice.format(error=problem)
    return None


async def wait_for_database(engine: AsyncEngine, *, timeout_seconds: float) -> None:
    """Until the database answers; a refused login or TLS handshake ends the wait
    at once."""
    deadline = time.monotonic() + timeout_seconds
    while (problem := await database_problem(engine)) is not None:
        if LOGIN_REFUSED in problem or NO_SUCH_DATABASE.search(problem):
            raise SystemExit(LOGIN_REFUSED_ADVICE.format(error=problem))
        if advice := tls_refusal(problem):
            raise SystemExit(advice)
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


def load_settings() -> Settings:
    """The settings, or an exit naming what is wrong with them (no traceback)."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SystemExit(f"invalid settings: {problems}") from None
    except SettingFileError as exc:
        raise SystemExit(f"invalid settings: {exc}") from None


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(prepare(settings))


if __name__ == "__main__":
    main()
