"""Migration 0006 on a database of its own: the api_keys table arrives (a key
goes with its user), and it downgrades cleanly."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

BEFORE, REVISION = "0005_roles", "0006_api_keys"


def test_0006_adds_api_keys_that_go_with_their_user_and_downgrades(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, email, hashed_password) VALUES (1, 'a@example.com', 'x')")
        )
    command.upgrade(config, REVISION)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes) VALUES"
                " (gen_random_uuid(), 1, 'CI', 'fsk_abcdef', repeat('0', 64), '{items.read}')"
            )
        )
        connection.execute(text("DELETE FROM users"))
        assert connection.scalar(text("SELECT count(*) FROM api_keys")) == 0
    indexes = {index["name"] for index in inspect(engine).get_indexes("api_keys")}
    assert "ix_api_keys_user_id" in indexes
    command.downgrade(config, BEFORE)
    assert "api_keys" not in set(inspect(engine).get_table_names())
    command.upgrade(config, REVISION)  # and up again
    assert "api_keys" in set(inspect(engine).get_table_names())
