"""Migration 0003 on a database holding sessions from before it: each session's
last use and expiry are read from its refresh tokens, so the sweep (which deletes
sessions by expires_at) never deletes a session one of its tokens still keeps
alive. Run on a database of its own, created and dropped here."""

import uuid
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

BEFORE, REVISION = "0002_session_epoch", "0003_session_clients"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def seed_session(engine: Engine, name: str, expires_at: datetime, tokens: list[datetime]) -> str:
    """A session created at T0 and refresh tokens issued at the given times (each
    lasting 14 days), as the code before 0003 wrote them."""
    session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO auth_sessions (id, user_id, created_at, expires_at)"
                " VALUES (:id, 1, :t0, :expires_at)"
            ),
            {"id": session_id, "t0": T0, "expires_at": expires_at},
        )
        for issued_at in tokens:
            connection.execute(
                text(
                    "INSERT INTO refresh_tokens (jti, session_id, issued_at, expires_at)"
                    " VALUES (:jti, :id, :issued_at, :expires_at)"
                ),
                {
                    "jti": str(uuid.uuid4()),
                    "id": session_id,
                    "issued_at": issued_at,
                    "expires_at": issued_at + 14 * DAY,
                },
            )
    return session_id


def test_0003_reads_each_sessions_last_use_and_expiry_from_its_tokens(
    scratch: tuple[Config, Engine],
) -> None:
    config, engine = scratch
    command.upgrade(config, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, email, hashed_password) VALUES (1, 'a@example.com', 'x')")
        )
    refreshed = seed_session(engine, "refreshed", T0 + 14 * DAY, [T0, T0 + 5 * DAY])
    tokenless = seed_session(engine, "tokenless", T0 + 14 * DAY, [])
    # Its session outlives its last token (the lifetime was shortened since).
    outliving = seed_session(engine, "outliving", T0 + 30 * DAY, [T0])

    command.upgrade(config, REVISION)

    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id::text, last_used_at, expires_at, user_agent, client_address,"
                " last_user_agent, last_client_address FROM auth_sessions"
            )
        )
        found = {row[0]: tuple(row[1:]) for row in rows}
    unknown_client = (None, None, None, None)
    assert found == {
        refreshed: (T0 + 5 * DAY, T0 + 19 * DAY, *unknown_client),
        tokenless: (T0, T0 + 14 * DAY, *unknown_client),
        outliving: (T0, T0 + 30 * DAY, *unknown_client),
    }


def test_0003_downgrades_to_0002(scratch: tuple[Config, Engine]) -> None:
    config, engine = scratch
    command.upgrade(config, REVISION)
    command.downgrade(config, BEFORE)
    with engine.connect() as connection:
        columns = set(
            connection.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'auth_sessions'"
                )
            ).scalars()
        )
    assert columns == {"id", "user_id", "created_at", "expires_at", "revoked_at"}
