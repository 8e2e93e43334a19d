"""Migration 0008 on a database of its own: the second factor's three tables
arrive with their keys and indexes, go with their user (ON DELETE CASCADE), and
the migration downgrades cleanly."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, inspect, text

BEFORE, REVISION = "0007_audit_events", "0008_second_factor"
TABLES = {"totp_credentials", "recovery_codes", "login_challenges"}
INDEXES = {
    "recovery_codes": {"ix_recovery_codes_user_hash": (["user_id", "code_hash"], True)},
    "login_challenges": {
        "ix_login_challenges_user_id": (["user_id"], False),
        "ix_login_challenges_expires_at": (["expires_at"], False),
    },
}


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def add_rows(connection: Connection) -> int:
    user_id: int = connection.scalar(
        text(
            "INSERT INTO users (email, hashed_password) VALUES ('a@example.com', 'x') RETURNING id"
        )
    )
    connection.execute(
        text("INSERT INTO totp_credentials (user_id, encrypted_secret) VALUES (:id, 'sealed')"),
        {"id": user_id},
    )
    connection.execute(
        text("INSERT INTO recovery_codes (user_id, code_hash) VALUES (:id, 'h')"), {"id": user_id}
    )
    connection.execute(
        text(
            "INSERT INTO login_challenges (id, token_hash, user_id, session_epoch, expires_at)"
            " VALUES (gen_random_uuid(), 't', :id, 0, now())"
        ),
        {"id": user_id},
    )
    return user_id


def test_0008_adds_the_second_factor_tables_that_go_with_their_user_and_downgrades(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    assert not TABLES & tables(engine)
    command.upgrade(config, REVISION)
    assert tables(engine) >= TABLES
    with engine.begin() as connection:
        add_rows(connection)
        credential = connection.execute(text("SELECT * FROM totp_credentials")).mappings().one()
        challenge = connection.execute(text("SELECT * FROM login_challenges")).mappings().one()
        code = connection.execute(text("SELECT * FROM recovery_codes")).mappings().one()
        # A credential starts pending, no step used; a challenge with no guess, unspent.
        assert credential["confirmed_at"] is None
        assert credential["last_used_step"] == 0
        assert credential["created_at"].tzinfo is not None
        assert (challenge["guesses"], challenge["used_at"]) == (0, None)
        assert code["used_at"] is None
        connection.execute(text("DELETE FROM users"))
        for table in sorted(TABLES):
            assert connection.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table  # noqa: S608
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("totp_credentials")["constrained_columns"] == ["user_id"]
    for table in TABLES:
        [foreign_key] = inspector.get_foreign_keys(table)
        assert foreign_key["referred_table"] == "users", table
        assert foreign_key["options"].get("ondelete") == "CASCADE", table
    for table, wanted in INDEXES.items():
        found = {
            index["name"]: (index["column_names"], index["unique"])
            for index in inspector.get_indexes(table)
        }
        assert {name: found.get(name) for name in wanted} == wanted, table
    [unique] = inspector.get_unique_constraints("login_challenges")
    assert unique["column_names"] == ["token_hash"]
    command.downgrade(config, BEFORE)
    assert not TABLES & tables(engine)
    command.upgrade(config, REVISION)  # and up again
    assert tables(engine) >= TABLES
