"""The sweep (app/services/maintenance.py): it deletes exactly the rows past their
use, on both sides of every boundary; one process sweeps at a time; the app runs
it in the background and stops it at shutdown."""

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.config import Settings
from app.models import utcnow
from app.services.maintenance import SweepCounts, sweep
from tests.conftest import app_with, bearer, me

TICK = timedelta(microseconds=1)  # Postgres timestamps' resolution


async def execute(app: FastAPI, sql: str, **values: Any) -> None:
    async with app.state.engine.begin() as connection:
        await connection.execute(text(sql), values)


async def ids(app: FastAPI, table: str, column: str) -> set[Any]:
    async with app.state.engine.connect() as connection:
        result = await connection.execute(text(f"SELECT {column} FROM {table}"))  # noqa: S608
        return {row[0] for row in result}


async def add_user(app: FastAPI) -> int:
    async with app.state.engine.begin() as connection:
        user_id: int = await connection.scalar(
            text(
                "INSERT INTO users (email, hashed_password) VALUES ('seed@example.com', 'x') "
                "RETURNING id"
            )
        )
    return user_id


async def add_session(
    app: FastAPI,
    user_id: int,
    name: str,
    *,
    expires_at: datetime,
    revoked_at: datetime | None = None,
) -> str:
    session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    await execute(
        app,
        "INSERT INTO auth_sessions (id, user_id, expires_at, revoked_at, user_agent) "
        "VALUES (:id, :user_id, :expires_at, :revoked_at, :name)",
        id=session_id,
        user_id=user_id,
        expires_at=expires_at,
        revoked_at=revoked_at,
        name=name,
    )
    return session_id


async def add_token(
    app: FastAPI,
    session_id: str,
    name: str,
    *,
    expires_at: datetime,
    used_at: datetime | None = None,
) -> str:
    jti = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    await execute(
        app,
        "INSERT INTO refresh_tokens (jti, session_id, expires_at, used_at) "
        "VALUES (:jti, :session_id, :expires_at, :used_at)",
        jti=jti,
        session_id=session_id,
        expires_at=expires_at,
        used_at=used_at,
    )
    return jti


async def add_failure(app: FastAPI, failed_at: datetime) -> int:
    async with app.state.engine.begin() as connection:
        row_id: int = await connection.scalar(
            text("INSERT INTO login_failures (key, failed_at) VALUES ('k', :at) RETURNING id"),
            {"at": failed_at},
        )
    return row_id


async def add_event(app: FastAPI, occurred_at: datetime) -> int:
    async with app.state.engine.begin() as connection:
        event_id: int = await connection.scalar(
            text(
                "INSERT INTO audit_events (type, target_id, occurred_at) "
                "VALUES ('login.succeeded', 1, :at) RETURNING id"
            ),
            {"at": occurred_at},
        )
    return event_id


async def run_sweep(app: FastAPI, settings: Settings, now: datetime) -> SweepCounts | None:
    async with app.state.session_factory() as db:
        return await sweep(db=db, settings=settings, now=now)


async def test_the_sweep_deletes_exactly_what_has_outlived_its_use(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    now = utcnow()
    cutoff = now - settings.SESSION_RETENTION  # ended this long ago or more: deleted
    user_id = await add_user(app)
    gone: dict[str, set[Any]] = {"sessions": set(), "tokens": set(), "failures": set()}
    kept: dict[str, set[Any]] = {"sessions": set(), "tokens": set(), "failures": set()}

    # A live session: kept, and its unexpired tokens (a spent one is reuse
    # detection's record); its tokens expired at the cutoff or before go.
    live = await add_session(app, user_id, "live", expires_at=now + timedelta(days=1))
    kept["sessions"].add(live)
    kept["tokens"] |= {
        await add_token(app, live, "live unspent", expires_at=now + timedelta(days=1)),
        await add_token(
            app, live, "live spent", expires_at=now + TICK, used_at=now - timedelta(days=30)
        ),
        await add_token(app, live, "expired within retention", expires_at=cutoff + TICK),
    }
    gone["tokens"] |= {
        await add_token(app, live, "expired at the cutoff", expires_at=cutoff, used_at=cutoff),
        await add_token(app, live, "expired long ago", expires_at=cutoff - timedelta(days=9)),
    }
    # Revoked sessions: kept for the retention, then deleted with all their tokens,
    # unexpired ones included.
    recent = await add_session(
        app,
        user_id,
        "revoked recently",
        expires_at=now + timedelta(days=1),
        revoked_at=cutoff + TICK,
    )
    kept["sessions"].add(recent)
    kept["tokens"].add(
        await add_token(app, recent, "of recent", expires_at=now + timedelta(days=1))
    )
    for name, revoked_at in (
        ("revoked at cutoff", cutoff),
        ("revoked long ago", now - timedelta(days=90)),
    ):
        revoked = await add_session(
            app, user_id, name, expires_at=now + timedelta(days=1), revoked_at=revoked_at
        )
        gone["sessions"].add(revoked)
        gone["tokens"].add(
            await add_token(app, revoked, f"of {name}", expires_at=now + timedelta(days=1))
        )
    # Expired sessions, likewise.
    kept["sessions"].add(
        await add_session(app, user_id, "expired recently", expires_at=cutoff + TICK)
    )
    expired = await add_session(app, user_id, "expired at cutoff", expires_at=cutoff)
    gone["sessions"].add(expired)
    gone["tokens"].add(await add_token(app, expired, "of expired", expires_at=cutoff))
    # Login failures: kept while inside the longest throttle window.
    window = max(settings.LOGIN_FAILURE_WINDOW, settings.LOGIN_ACCOUNT_FAILURE_WINDOW)
    assert settings.LOGIN_FAILURE_WINDOW < window  # so a failure can sit between them
    gone["failures"] |= {
        await add_failure(app, now - window),
        await add_failure(app, now - 2 * window),
    }
    kept["failures"] |= {
        await add_failure(app, now - window + TICK),
        await add_failure(app, now - settings.LOGIN_FAILURE_WINDOW - TICK),  # the account's window
        await add_failure(app, now),
    }
    # And a real user's session, used through the API (its registration's mail
    # counted once toward the address's mail limit: a recent row, kept).
    real_sessions = await ids(app, "auth_sessions", "id::text")
    real_tokens = await ids(app, "refresh_tokens", "jti::text")
    real_failures = await ids(app, "login_failures", "id")
    real_sessions -= kept["sessions"] | gone["sessions"]
    real_tokens -= kept["tokens"] | gone["tokens"]
    real_failures -= kept["failures"] | gone["failures"]

    counts = await run_sweep(app, settings, now)

    assert counts == SweepCounts(
        sessions=len(gone["sessions"]),
        refresh_tokens=len(gone["tokens"]),
        login_failures=len(gone["failures"]),
    )
    assert await ids(app, "auth_sessions", "id::text") == kept["sessions"] | real_sessions
    assert await ids(app, "refresh_tokens", "jti::text") == kept["tokens"] | real_tokens
    assert await ids(app, "login_failures", "id") == kept["failures"] | real_failures
    # The real session still works, both ways.
    assert (await me(client, user_tokens["access_token"])).status_code == 200
    refreshed = await client.post(
        "/api/token/refresh", json={"refresh_token": user_tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    # Nothing is left to delete.
    assert await run_sweep(app, settings, now) == SweepCounts(0, 0, 0)


async def test_a_spent_token_kept_by_the_sweep_still_reveals_its_theft(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """The spent token of a live session outlives the sweep: replaying it still
    revokes the family (RFC 9700), with the sweep run well after the spend."""
    renewed = await client.post(
        "/api/token/refresh", json={"refresh_token": user_tokens["refresh_token"]}
    )
    assert renewed.status_code == 200
    later = utcnow() + settings.SESSION_RETENTION + timedelta(days=1)
    assert later < utcnow() + settings.REFRESH_TOKEN_TTL  # the spent token has not expired
    await run_sweep(app, settings, later)
    await execute(app, "UPDATE refresh_tokens SET used_at = used_at - interval '1 minute'")
    replay = await client.post(
        "/api/token/refresh", json={"refresh_token": user_tokens["refresh_token"]}
    )
    assert replay.status_code == 401
    assert (await me(client, renewed.json()["access_token"])).status_code == 401


async def test_of_two_sweeps_at_once_one_does_the_work_and_the_other_skips(
    app: FastAPI, settings: Settings
) -> None:
    now = utcnow()
    old = now - 2 * max(settings.LOGIN_FAILURE_WINDOW, settings.LOGIN_ACCOUNT_FAILURE_WINDOW)
    held = await add_failure(app, old)
    await add_failure(app, old)
    # The first sweep takes the lock, then waits on a row this test holds.
    async with app.state.engine.connect() as blocker:
        await blocker.execute(
            text("SELECT 1 FROM login_failures WHERE id = :id FOR UPDATE"), {"id": held}
        )
        first = asyncio.create_task(run_sweep(app, settings, now))
        await wait_for_a_sweep_blocked_holding_the_lock(app)
        second = await run_sweep(app, settings, now)
        assert not first.done()
        await blocker.rollback()
    assert second is None
    assert await first == SweepCounts(sessions=0, refresh_tokens=0, login_failures=2)


async def wait_for_a_sweep_blocked_holding_the_lock(app: FastAPI) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with app.state.engine.connect() as connection:
            holding = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid IN (SELECT pid FROM pg_locks WHERE NOT granted)"
                )
            )
        if holding:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no sweep took the lock and waited")


async def test_the_app_sweeps_in_the_background_and_stops_at_shutdown(
    app: FastAPI, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.services.maintenance")
    old = utcnow() - 2 * max(settings.LOGIN_FAILURE_WINDOW, settings.LOGIN_ACCOUNT_FAILURE_WINDOW)
    stale = await add_failure(app, old)
    async with app_with(settings, SWEEP_INTERVAL=timedelta(milliseconds=50)) as swept:
        sweeper = swept.state.sweeper
        deadline = time.monotonic() + 10
        while stale in await ids(app, "login_failures", "id"):
            assert time.monotonic() < deadline, "the background sweep did not run"
            await asyncio.sleep(0.02)
        assert not sweeper.done()
    assert sweeper.cancelled()
    messages = [r.getMessage() for r in caplog.records if r.name == "app.services.maintenance"]
    assert (
        "sweep deleted 0 sessions, 0 refresh tokens, 1 login failures, 0 mails, "
        "0 single-use tokens, 0 audit events, 0 login challenges, 0 passkey ceremonies" in messages
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_shutdown_does_not_wait_for_the_next_sweep(settings: Settings) -> None:
    started = time.monotonic()
    async with app_with(settings, SWEEP_INTERVAL=timedelta(hours=1)) as application:
        sweeper = application.state.sweeper
        assert not sweeper.done()
    assert sweeper.cancelled()
    assert time.monotonic() - started < 5


async def test_an_interval_of_zero_runs_no_sweep(settings: Settings) -> None:
    async with app_with(settings, SWEEP_INTERVAL=timedelta(0)) as application:
        assert application.state.sweeper is None
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "sweep"]


async def test_a_failing_sweep_is_logged_and_the_next_one_runs(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A database outage must not end the sweeps for the life of the process."""
    unreachable = {"POSTGRES_URL": "127.0.0.1:9", "DB_CONNECT_TIMEOUT": 1}
    async with app_with(
        settings, SWEEP_INTERVAL=timedelta(milliseconds=20), **unreachable
    ) as application:
        deadline = time.monotonic() + 15
        while len(failures(caplog)) < 2:
            assert time.monotonic() < deadline, "the sweep did not retry"
            await asyncio.sleep(0.05)
        assert not application.state.sweeper.done()


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("sweep failed")]


async def test_a_session_ended_through_the_api_is_swept_after_the_retention(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    session_id = (
        await client.get("/api/auth/sessions", headers=bearer(user_tokens["access_token"]))
    ).json()[0]["id"]
    ended = await client.delete(
        f"/api/auth/sessions/{session_id}", headers=bearer(user_tokens["access_token"])
    )
    assert ended.status_code == 204
    assert await run_sweep(app, settings, utcnow()) == SweepCounts(0, 0, 0)
    later = utcnow() + settings.SESSION_RETENTION
    # The registration's mail count goes too, its window long past.
    assert await run_sweep(app, settings, later) == SweepCounts(1, 1, 1)
    assert await ids(app, "auth_sessions", "id") == set()


async def test_the_sweep_deletes_audit_events_past_their_retention(
    app: FastAPI, settings: Settings, user_tokens: dict[str, Any]
) -> None:
    """Events as old as AUDIT_RETENTION or older go; younger ones stay, the
    registration's (recorded through the API) among them."""
    recorded = await ids(app, "audit_events", "id")
    assert recorded  # the registration's event
    now = utcnow()
    cutoff = now - settings.AUDIT_RETENTION
    gone = {await add_event(app, cutoff), await add_event(app, cutoff - timedelta(days=400))}
    kept = {await add_event(app, cutoff + TICK), await add_event(app, now - timedelta(days=1))}

    counts = await run_sweep(app, settings, now)

    assert counts == SweepCounts(0, 0, 0, audit_events=len(gone))
    assert await ids(app, "audit_events", "id") == kept | recorded
    assert await run_sweep(app, settings, now) == SweepCounts(0, 0, 0)


async def add_challenge(app: FastAPI, user_id: int, expires_at: datetime) -> str:
    async with app.state.engine.begin() as connection:
        challenge_id: str = await connection.scalar(
            text(
                "INSERT INTO login_challenges (id, token_hash, user_id, session_epoch, expires_at)"
                " VALUES (gen_random_uuid(), md5(random()::text), :user_id, 0, :at) RETURNING id"
            ),
            {"user_id": user_id, "at": expires_at},
        )
    return challenge_id


async def test_the_sweep_deletes_expired_login_challenges(app: FastAPI, settings: Settings) -> None:
    """A second step's challenge goes once expired, used or not; a live one stays."""
    user_id = await add_user(app)
    now = utcnow()
    gone = {await add_challenge(app, user_id, now), await add_challenge(app, user_id, now - TICK)}
    kept = {await add_challenge(app, user_id, now + TICK)}

    counts = await run_sweep(app, settings, now)

    assert counts == SweepCounts(0, 0, 0, login_challenges=len(gone))
    assert await ids(app, "login_challenges", "id") == kept


async def add_ceremony(app: FastAPI, user_id: int | None, expires_at: datetime) -> str:
    async with app.state.engine.begin() as connection:
        ceremony_id: str = await connection.scalar(
            text(
                "INSERT INTO passkey_ceremonies (id, token_hash, purpose, user_id, challenge,"
                " expires_at) VALUES (gen_random_uuid(), md5(random()::text), :purpose,"
                " :user_id, '\\x00', :at) RETURNING id"
            ),
            {
                "user_id": user_id,
                "purpose": "login" if user_id is None else "register",
                "at": expires_at,
            },
        )
    return ceremony_id


async def test_the_sweep_deletes_expired_passkey_ceremonies(
    app: FastAPI, settings: Settings
) -> None:
    """A registration's or a sign-in's ceremony goes once expired; a live one stays."""
    user_id = await add_user(app)
    now = utcnow()
    gone = {await add_ceremony(app, user_id, now), await add_ceremony(app, None, now - TICK)}
    kept = {await add_ceremony(app, user_id, now + TICK), await add_ceremony(app, None, now + TICK)}

    counts = await run_sweep(app, settings, now)

    assert counts == SweepCounts(0, 0, 0, passkey_ceremonies=len(gone))
    assert await ids(app, "passkey_ceremonies", "id") == kept
