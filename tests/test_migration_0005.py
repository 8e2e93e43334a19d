"""Migration 0005 on a database of its own: the roles tables arrive, every
superuser from before it holds the built-in admin role (as the app reads it,
with every permission) and nobody else holds any role, and it downgrades
cleanly."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from app.auth.service import _AUTHENTICATED_USER_SQL
from app.policy import ADMIN_PERMISSIONS, OWN_PERMISSIONS, Permission, held_permissions

BEFORE, REVISION = "0004_mail", "0005_roles"


def held(engine: Engine) -> dict[str, frozenset[Permission]]:
    """Each account's permissions, read by the app's own lookup (through a session)."""
    found: dict[str, frozenset[Permission]] = {}
    with engine.connect() as connection:
        for user_id, email, session_id in connection.execute(
            text(
                "SELECT users.id, email, auth_sessions.id FROM users"
                " JOIN auth_sessions ON auth_sessions.user_id = users.id"
            )
        ):
            row = (
                connection.exec_driver_sql(
                    _AUTHENTICATED_USER_SQL, {"user_id": user_id, "session_id": session_id}
                )
                .mappings()
                .one()
            )
            found[email] = held_permissions(
                admin=row["is_superuser"], from_roles=row["role_permissions"]
            )
    return found


def test_0005_gives_existing_superusers_the_admin_role_and_downgrades(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, hashed_password, is_superuser) VALUES"
                " (1, 'root@example.com', 'x', true), (2, 'ada@example.com', 'x', false)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO auth_sessions (id, user_id, expires_at) VALUES"
                " ('00000000-0000-4000-8000-000000000001', 1, now() + interval '1 day'),"
                " ('00000000-0000-4000-8000-000000000002', 2, now() + interval '1 day')"
            )
        )
    command.upgrade(config, REVISION)
    assert {"roles", "user_roles"} <= set(inspect(engine).get_table_names())
    assert held(engine) == {
        "root@example.com": ADMIN_PERMISSIONS,
        "ada@example.com": OWN_PERMISSIONS,
    }
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM user_roles")) == 0
    command.downgrade(config, BEFORE)
    assert not {"roles", "user_roles"} & set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        # The flag, and so who was an admin, is untouched by the way down.
        assert connection.scalar(text("SELECT id FROM users WHERE is_superuser")) == 1
    command.upgrade(config, REVISION)  # and up again
    assert held(engine)["root@example.com"] == ADMIN_PERMISSIONS
