"""The user's special password, end to end against a real server."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.database.db import create_engine
from devtools.embedded_postgres import EmbeddedPostgres
from tests.conftest import SPECIAL_PASSWORD, make_settings


async def test_the_users_example_password_connects_over_tcp(settings: Settings) -> None:
    assert settings.POSTGRES_PW.get_secret_value() == SPECIAL_PASSWORD
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT current_user")) == "app"
            method = await connection.scalar(
                text("SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1")
            )
    finally:
        await engine.dispose()
    assert method == "scram-sha-256"


async def test_a_wrong_password_is_refused_so_the_check_is_real(
    postgres: EmbeddedPostgres,
) -> None:
    engine = create_engine(make_settings(postgres, POSTGRES_PW=SPECIAL_PASSWORD + "x"))
    try:
        with pytest.raises(OperationalError, match="password authentication failed"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
