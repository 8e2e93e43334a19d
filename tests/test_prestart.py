import asyncio
import time

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from app.config import Settings
from app.prestart import prepare
from app.services.users import ensure_superuser
from devtools.embedded_postgres import free_port


def with_superuser(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "FIRST_SUPERUSER_EMAIL": "Boss@Example.com",
            "FIRST_SUPERUSER_PASSWORD": SecretStr("a strong password"),
        }
    )


async def count_superusers(app: FastAPI) -> int:
    async with app.state.engine.connect() as connection:
        count: int = await connection.scalar(
            text("SELECT count(*) FROM users WHERE is_superuser AND email = 'boss@example.com'")
        )
    return count


async def test_prestart_migrates_and_creates_the_superuser_once(
    app: FastAPI, settings: Settings
) -> None:
    await prepare(with_superuser(settings))
    await prepare(with_superuser(settings))
    assert await count_superusers(app) == 1


async def test_concurrent_superuser_creation_makes_one_user(
    app: FastAPI, settings: Settings
) -> None:
    configured = with_superuser(settings)

    async def create() -> bool:
        async with app.state.session_factory() as db:
            return await ensure_superuser(db=db, settings=configured)

    results = await asyncio.gather(*(create() for _ in range(5)))
    assert results.count(True) == 1
    assert await count_superusers(app) == 1


async def test_the_models_and_the_migrations_agree(settings: Settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import app.models  # noqa: F401
    from app.database.db import create_engine

    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_a_password_the_database_refuses_fails_at_once_saying_what_to_do(
    settings: Settings,
) -> None:
    """Waiting cannot cure a wrong password (a volume keeps the one it was created
    with): prestart stops at once and says so, instead of after its whole wait."""
    wrong = settings.model_copy(update={"POSTGRES_PW": SecretStr("not-the-volume's-password")})
    started = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        await prepare(wrong, wait_seconds=60)
    assert time.monotonic() - started < 5
    message = str(stopped.value)
    assert 'password authentication failed for user "app"' in message
    assert "POSTGRES_PW" in message
    assert "Rotating secrets" in message


async def test_a_database_that_never_answers_fails_after_the_wait_saying_why(
    settings: Settings,
) -> None:
    nowhere = settings.model_copy(update={"POSTGRES_URL": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        await prepare(nowhere, wait_seconds=1.5)
    assert 1.5 <= time.monotonic() - started < 6
    assert "did not answer within 2 s" in str(stopped.value)
    assert "refused" in str(stopped.value).lower()
