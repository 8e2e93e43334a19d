"""Migration 0009 on a database of its own: the OpenID identities' table arrives
with its unique (provider, subject) index, goes with its user (ON DELETE
CASCADE), and the migration downgrades cleanly."""

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

BEFORE, REVISION = "0008_second_factor", "0009_oidc_identities"
TABLE = "oidc_identities"
INDEXES = {
    "ix_oidc_identities_provider_subject": (["provider", "subject"], True),
    "ix_oidc_identities_user_id": (["user_id"], False),
}
USER = "INSERT INTO users (email, hashed_password) VALUES ('a@example.com', '') RETURNING id"
LINK = (
    "INSERT INTO oidc_identities (user_id, provider, subject, email)"
    " VALUES (:id, 'google', 'sub-1', 'a@example.com')"
)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_0009_adds_oidc_identities_unique_per_provider_subject_gone_with_their_user(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    assert TABLE not in tables(engine)
    command.upgrade(config, REVISION)
    assert TABLE in tables(engine)
    with engine.begin() as connection:
        user_id = connection.scalar(text(USER))
        connection.execute(text(LINK), {"id": user_id})
        row = connection.execute(text(f"SELECT * FROM {TABLE}")).mappings().one()  # noqa: S608
        assert row["created_at"].tzinfo is not None
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(LINK), {"id": user_id})  # the same (provider, subject) again
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM users"))
        assert connection.scalar(text(f"SELECT count(*) FROM {TABLE}")) == 0  # noqa: S608
    inspector = inspect(engine)
    [foreign_key] = inspector.get_foreign_keys(TABLE)
    assert foreign_key["referred_table"] == "users"
    assert foreign_key["options"].get("ondelete") == "CASCADE"
    found = {
        index["name"]: (index["column_names"], index["unique"])
        for index in inspector.get_indexes(TABLE)
    }
    assert {name: found.get(name) for name in INDEXES} == INDEXES
    command.downgrade(config, BEFORE)
    assert TABLE not in tables(engine)
    command.upgrade(config, REVISION)  # and up again
    assert TABLE in tables(engine)
