"""Migration 0011 on a database of its own: the items' list indexes (each sort, an
owner's and everyone's, with the id), the trigram indexes for `q` (pg_trgm
created by the migration) and the sweep's expiry indexes arrive; rows already
there stay; the migration downgrades cleanly and upgrades again."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

BEFORE, REVISION = "0010_passkeys", "0011_list_indexes"
ITEM_INDEXES = {
    "ix_items_owner_name": ["owner_id", "name", "id"],
    "ix_items_owner_price": ["owner_id", "price", "id"],
    "ix_items_owner_created_at": ["owner_id", "created_at", "id"],
    "ix_items_name": ["name", "id"],
    "ix_items_price": ["price", "id"],
    "ix_items_created_at": ["created_at", "id"],
    "ix_items_name_trgm": ["name"],
    "ix_items_description_trgm": ["description"],
}
SWEEP_INDEXES = {
    "auth_sessions": {"ix_auth_sessions_expires_at", "ix_auth_sessions_revoked_at"},
    "refresh_tokens": {"ix_refresh_tokens_expires_at"},
    "login_failures": {"ix_login_failures_failed_at"},
    "one_time_tokens": {"ix_one_time_tokens_expires_at"},
    "mail_outbox": {"ix_mail_outbox_done_created_at"},
}
USER = "INSERT INTO users (email, hashed_password) VALUES ('a@example.com', '') RETURNING id"
ITEM = "INSERT INTO items (owner_id, name, price) VALUES (:id, 'Espresso machine', 10)"


def index_columns(engine: Engine, table: str) -> dict[str, list[str | None]]:
    return {
        str(index["name"]): index["column_names"] for index in inspect(engine).get_indexes(table)
    }


def index_definition(engine: Engine, name: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"), {"name": name}
            )
        )


def test_0011_adds_the_list_trigram_and_sweep_indexes_and_keeps_the_rows(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    with engine.begin() as connection:
        user_id = connection.scalar(text(USER))
        connection.execute(text(ITEM), {"id": user_id})
    assert "ix_items_owner_created" in index_columns(engine, "items")

    command.upgrade(config, REVISION)
    found = index_columns(engine, "items")
    assert {name: found.get(name) for name in ITEM_INDEXES} == ITEM_INDEXES
    assert "ix_items_owner_created" not in found  # superseded by ix_items_owner_created_at
    for name in ("ix_items_name_trgm", "ix_items_description_trgm"):
        assert "USING gin" in index_definition(engine, name)
        assert "gin_trgm_ops" in index_definition(engine, name)
    for table, names in SWEEP_INDEXES.items():
        assert names <= set(index_columns(engine, table)), table
    assert "WHERE (revoked_at IS NOT NULL)" in index_definition(
        engine, "ix_auth_sessions_revoked_at"
    )
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT count(*) FROM items")) == 1
        # pg_trgm is there: the operator class the indexes use, and its functions.
        assert connection.scalar(text("SELECT similarity('espresso', 'expresso')")) > 0
    command.downgrade(config, BEFORE)
    found = index_columns(engine, "items")
    assert not set(ITEM_INDEXES) & set(found)
    assert found["ix_items_owner_created"] == ["owner_id", "created_at"]
    for table, names in SWEEP_INDEXES.items():
        assert not names & set(index_columns(engine, table)), table
    command.upgrade(config, REVISION)  # and up again
    assert set(ITEM_INDEXES) <= set(index_columns(engine, "items"))
