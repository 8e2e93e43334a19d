"""Migration 0004 on a database of its own: accounts from before it start
unverified, the outbox and token tables arrive, and it downgrades cleanly."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

BEFORE, REVISION = "0003_session_clients", "0004_mail"


def test_0004_leaves_existing_accounts_unverified_and_downgrades(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (email, hashed_password) VALUES ('a@example.com', 'x')")
        )
    command.upgrade(config, REVISION)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT is_verified FROM users")) is False
    tables = set(inspect(engine).get_table_names())
    assert {"mail_outbox", "one_time_tokens"} <= tables
    command.downgrade(config, BEFORE)
    inspector = inspect(engine)
    assert not {"mail_outbox", "one_time_tokens"} & set(inspector.get_table_names())
    assert "is_verified" not in {column["name"] for column in inspector.get_columns("users")}
    command.upgrade(config, REVISION)  # and up again
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM users WHERE NOT is_verified")) == 1
