import asyncio

from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from app.config import Settings
from app.prestart import prepare
from app.services.users import ensure_superuser


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
        async with app.state.session_factory() as session:
            return await ensure_superuser(session=session, settings=configured)

    results = await asyncio.gather(*(create() for _ in range(5)))
    assert results.count(True) == 1
    assert await count_superusers(app) == 1


async def test_the_models_and_the_migrations_agree(settings: Settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import app.models.models  # noqa: F401
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
