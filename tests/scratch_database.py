"""A database of its own on the suite's Postgres, for tests that migrate or
rewrite the schema (the shared test database must stay at head)."""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

from app.config import Settings
from app.prestart import ALEMBIC_INI


@contextmanager
def scratch_database(settings: Settings, name: str) -> Iterator[tuple[Config, Engine, Settings]]:
    """Creates `name` empty (dropping what an interrupted run left), yields an
    Alembic config and an engine for it and the settings that point at it, and
    drops it afterwards."""
    server = create_engine(settings.database_url(), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    scratch_settings = settings.model_copy(update={"POSTGRES_DB": name})
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = scratch_settings.database_url()
    engine = create_engine(scratch_settings.database_url())
    try:
        yield config, engine, scratch_settings
    finally:
        engine.dispose()
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        server.dispose()
