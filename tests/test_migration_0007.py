"""Migration 0007 on a database of its own: the audit_events table arrives with
its indexes, an event outlives the user it names (no foreign key), and it
downgrades cleanly."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, inspect, text

BEFORE, REVISION = "0006_api_keys", "0007_audit_events"
INDEXES = {
    "ix_audit_events_actor": ["actor_id", "id"],
    "ix_audit_events_target": ["target_id", "id"],
    "ix_audit_events_type": ["type", "id"],
    "ix_audit_events_occurred_at": ["occurred_at"],
}


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def add_user(connection: Connection) -> int:
    user_id: int = connection.scalar(
        text(
            "INSERT INTO users (email, hashed_password) VALUES ('a@example.com', 'x') RETURNING id"
        )
    )
    return user_id


def test_0007_adds_audit_events_that_outlive_their_users_and_downgrades(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    assert "audit_events" not in tables(engine)
    command.upgrade(config, REVISION)
    with engine.begin() as connection:
        user_id = add_user(connection)
        connection.execute(
            text(
                "INSERT INTO audit_events (type, actor_id, target_id)"
                " VALUES ('user.registered', :id, :id)"
            ),
            {"id": user_id},
        )
        connection.execute(text("DELETE FROM users"))
        [event] = connection.execute(text("SELECT * FROM audit_events")).mappings()
    assert (event["type"], event["actor_id"], event["target_id"]) == (
        "user.registered",
        user_id,
        user_id,
    )
    assert event["details"] == {}  # the default, as JSONB
    assert event["occurred_at"] is not None
    assert event["occurred_at"].tzinfo is not None
    indexes = {
        index["name"]: index["column_names"]
        for index in inspect(engine).get_indexes("audit_events")
    }
    assert {name: indexes.get(name) for name in INDEXES} == INDEXES
    assert inspect(engine).get_foreign_keys("audit_events") == []
    command.downgrade(config, BEFORE)
    assert "audit_events" not in tables(engine)
    command.upgrade(config, REVISION)  # and up again
    assert "audit_events" in tables(engine)
