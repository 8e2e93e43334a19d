"""Alembic environment: the URL comes from app.config; one migrator at a time."""

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.config import get_settings

# Several containers may start together (`--scale app=3`): a session-level
# advisory lock makes the others wait, then find nothing left to do.
MIGRATION_LOCK_ID = 7_240_518_391

config = context.config
target_metadata = SQLModel.metadata


def run_offline() -> None:
    context.configure(
        url=get_settings().database_url().render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = config.attributes.get("database_url") or get_settings().database_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
