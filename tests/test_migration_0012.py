"""Migration 0012 on a database of its own: the rank anchors' tables arrive empty,
rows already there stay, and from then on the triggers log each insert, delete
and sort-column update of an item (TRUNCATE empties the tables); the migration
downgrades cleanly and upgrades again."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

BEFORE, REVISION = "0011_list_indexes", "0012_item_rank_anchors"
TABLES = {"item_rank_builds", "item_rank_anchors", "item_rank_changes"}
TRIGGERS = {"item_rank_inserted", "item_rank_deleted", "item_rank_updated", "item_rank_truncated"}
USER = "INSERT INTO users (email, hashed_password) VALUES ('a@example.com', '') RETURNING id"
ITEM = "INSERT INTO items (owner_id, name, price) VALUES (:id, :name, 10) RETURNING id"


def triggers(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.scalars(
                text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'items'::regclass")
            )
        )


def changes(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, delta FROM item_rank_changes ORDER BY delta, name")
        )
        return [(row.name, row.delta) for row in rows]


def test_0012_adds_the_anchor_tables_and_the_triggers_and_keeps_the_rows(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    with engine.begin() as connection:
        user_id = connection.scalar(text(USER))
        connection.execute(text(ITEM), {"id": user_id, "name": "before"})

    command.upgrade(config, REVISION)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert TRIGGERS <= triggers(engine)
    assert changes(engine) == []  # rows already there are no change
    with engine.begin() as connection:
        assert connection.scalar(text("SELECT count(*) FROM items")) == 1
        item_id = connection.scalar(text(ITEM), {"id": user_id, "name": "espresso"})
        connection.execute(
            text("UPDATE items SET name = 'ristretto' WHERE id = :id"), {"id": item_id}
        )
        # Not a sort column: nothing logged.
        connection.execute(
            text("UPDATE items SET description = 'x' WHERE id = :id"), {"id": item_id}
        )
        connection.execute(text("DELETE FROM items WHERE name = 'before'"))
    assert changes(engine) == [("before", -1), ("espresso", -1), ("espresso", 1), ("ristretto", 1)]
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE items"))
    assert changes(engine) == []

    command.downgrade(config, BEFORE)
    assert not TABLES & set(inspect(engine).get_table_names())
    assert not TRIGGERS & triggers(engine)
    with engine.connect() as connection:
        assert not connection.scalar(
            text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'item_rank_%'")
        )
    command.upgrade(config, REVISION)  # and up again
    assert TRIGGERS <= triggers(engine)
