"""The benchmark's data, written with set-based SQL (generate_series, COPY).

1,000 users own 100,000 items; the user under test (registered through the app)
owns 50 more. Refresh tokens for S3 are pre-issued here with the app's own token
functions, one session each, as if that many clients each held one.
"""

import uuid
from datetime import UTC, datetime

import bcrypt
import psycopg

from app.auth import tokens
from app.config import Settings

USERS = 1_000
ITEMS = 100_000
ITEMS_OF_USER_UNDER_TEST = 50
PASSWORD = "bench password 123"  # noqa: S105 (every seeded user's, on purpose)


def seeded_email(number: int) -> str:
    return f"user{number}@example.com"


def seed_population(connection: psycopg.Connection[object], *, bcrypt_rounds: int) -> None:
    """The 1,000 users (all with PASSWORD, hashed at the app's cost) and their items."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=bcrypt_rounds)).decode()
    connection.execute(
        """
        INSERT INTO users (email, full_name, hashed_password)
        SELECT format('user%%s@example.com', n), format('Bench user %%s', n), %s
        FROM generate_series(1, %s) AS n
        """,
        (hashed, USERS),
    )
    connection.execute(
        """
        WITH owners AS (
            SELECT array_agg(id ORDER BY id) AS ids FROM users WHERE email LIKE 'user%%'
        )
        INSERT INTO items (owner_id, name, description, price, tax, tags, image,
                           created_at, updated_at)
        SELECT owners.ids[1 + n %% %s], format('Item %%s', n),
               'A seeded item for the benchmark.',
               round((1 + random() * 999)::numeric, 2),
               CASE WHEN n %% 3 = 0 THEN NULL ELSE round((random() * 100)::numeric, 2) END,
               ARRAY['bench', format('tag%%s', n %% 10)],
               CASE WHEN n %% 2 = 0 THEN jsonb_build_object(
                   'url', format('https://example.com/items/%%s.jpg', n),
                   'name', format('Picture %%s', n)) END,
               now() - make_interval(secs => n), now() - make_interval(secs => n)
        FROM owners, generate_series(1, %s) AS n
        """,
        (USERS, ITEMS),
    )


def give_items(connection: psycopg.Connection[object], *, user_id: int) -> None:
    """The 50 items of the user under test, one a minute back from now."""
    connection.execute(
        """
        INSERT INTO items (owner_id, name, description, price, tax, tags, image,
                           created_at, updated_at)
        SELECT %s, format('My item %%s', n), 'An item of the user under test.',
               round((1 + random() * 999)::numeric, 2),
               CASE WHEN n %% 3 = 0 THEN NULL ELSE round((random() * 100)::numeric, 2) END,
               ARRAY['mine', format('tag%%s', n %% 10)],
               CASE WHEN n %% 2 = 0 THEN jsonb_build_object(
                   'url', format('https://example.com/mine/%%s.jpg', n),
                   'name', format('Mine %%s', n)) END,
               now() - make_interval(mins => n), now() - make_interval(mins => n)
        FROM generate_series(1, %s) AS n
        """,
        (user_id, ITEMS_OF_USER_UNDER_TEST),
    )


def analyze(connection: psycopg.Connection[object]) -> None:
    """Fresh statistics and visibility map, as a database that has been running."""
    connection.execute("VACUUM ANALYZE")


def issue_refresh_tokens(
    connection: psycopg.Connection[object], *, settings: Settings, user_id: int, count: int
) -> list[str]:
    """`count` live refresh tokens of the user, each opening its own session."""
    now = datetime.now(UTC)
    expires = now + settings.REFRESH_TOKEN_TTL
    pairs = [(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY auth_sessions (id, user_id, created_at, expires_at) FROM STDIN"
        ) as copy:
            for session_id, _ in pairs:
                copy.write_row((session_id, user_id, now, expires))
        with cursor.copy(
            "COPY refresh_tokens (jti, session_id, issued_at, expires_at) FROM STDIN"
        ) as copy:
            for session_id, jti in pairs:
                copy.write_row((jti, session_id, now, expires))
    return [
        tokens.encode_token(
            settings=settings,
            token_type=tokens.TokenType.REFRESH,
            user_id=user_id,
            session_id=session_id,
            jti=jti,
            issued_at=now,
            lifetime=settings.REFRESH_TOKEN_TTL,
        )
        for session_id, jti in pairs
    ]
