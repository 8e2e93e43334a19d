"""Migration 0010 on a database of its own: the passkeys, the users' WebAuthn
handles and the ceremonies arrive with their unique columns and indexes, go
with their user (ON DELETE CASCADE), and the migration downgrades cleanly."""

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

BEFORE, REVISION = "0009_oidc_identities", "0010_passkeys"
TABLES = {"passkeys", "webauthn_user_handles", "passkey_ceremonies"}
INDEXES = {
    "passkeys": {"ix_passkeys_user_id": (["user_id", "created_at"], False)},
    "passkey_ceremonies": {
        "ix_passkey_ceremonies_expires_at": (["expires_at"], False),
        "ix_passkey_ceremonies_user_id": (["user_id"], False),
    },
}
UNIQUE = {
    "passkeys": [["credential_id"]],
    "webauthn_user_handles": [["handle"]],
    "passkey_ceremonies": [["token_hash"]],
}
USER = "INSERT INTO users (email, hashed_password) VALUES (:email, '') RETURNING id"
PASSKEY = (
    "INSERT INTO passkeys (id, user_id, credential_id, public_key, name)"
    " VALUES (gen_random_uuid(), :id, '\\x0102', '\\x03', 'Phone')"
)
HANDLE = "INSERT INTO webauthn_user_handles (user_id, handle) VALUES (:id, :handle)"
CEREMONY = (
    "INSERT INTO passkey_ceremonies (id, token_hash, purpose, user_id, challenge, expires_at)"
    " VALUES (gen_random_uuid(), :hash, 'register', :id, '\\x00', now())"
)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_0010_adds_passkeys_handles_and_ceremonies_gone_with_their_user(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    assert not TABLES & tables(engine)
    command.upgrade(config, REVISION)
    assert TABLES <= tables(engine)
    with engine.begin() as connection:
        user_id = connection.scalar(text(USER), {"email": "a@example.com"})
        other_id = connection.scalar(text(USER), {"email": "b@example.com"})
        connection.execute(text(PASSKEY), {"id": user_id})
        connection.execute(text(HANDLE), {"id": user_id, "handle": b"handle"})
        connection.execute(text(CEREMONY), {"id": user_id, "hash": "h1"})
        row = connection.execute(text("SELECT * FROM passkeys")).mappings().one()
        assert (row["sign_count"], row["transports"], row["backed_up"]) == (0, [], False)
        assert row["created_at"].tzinfo is not None
        assert row["last_used_at"] is None
    for duplicate, values in [
        (PASSKEY, {"id": other_id}),  # one credential id, one account
        (HANDLE, {"id": other_id, "handle": b"handle"}),
        (HANDLE, {"id": user_id, "handle": b"another"}),  # one handle per user
        (CEREMONY, {"id": other_id, "hash": "h1"}),
    ]:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(duplicate), values)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})
        for table in TABLES:
            assert connection.scalar(text(f"SELECT count(*) FROM {table}")) == 0  # noqa: S608
    inspector = inspect(engine)
    for table in TABLES:
        [foreign_key] = inspector.get_foreign_keys(table)
        assert foreign_key["referred_table"] == "users"
        assert foreign_key["options"].get("ondelete") == "CASCADE"
        unique = [c["column_names"] for c in inspector.get_unique_constraints(table)]
        assert unique == UNIQUE[table], table
        found = {
            index["name"]: (index["column_names"], index["unique"])
            for index in inspector.get_indexes(table)
        }
        expected = INDEXES.get(table, {})
        assert {name: found.get(name) for name in expected} == expected, table
    command.downgrade(config, BEFORE)
    assert not TABLES & tables(engine)
    command.upgrade(config, REVISION)  # and up again
    assert TABLES <= tables(engine)
