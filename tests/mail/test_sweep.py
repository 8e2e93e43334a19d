"""The sweep deletes mails done with (sent or given up) and single-use tokens
expired SESSION_RETENTION ago, and nothing still pending or usable."""

from datetime import timedelta

from fastapi import FastAPI

from app.config import Settings
from app.models import utcnow
from app.services.maintenance import sweep
from tests.mail.helpers import execute, rows


async def test_the_sweep_deletes_old_finished_mails_and_expired_tokens(
    app: FastAPI, settings: Settings
) -> None:
    now = utcnow()
    old = now - settings.SESSION_RETENTION - timedelta(seconds=1)
    recent = now - settings.SESSION_RETENTION + timedelta(minutes=1)
    mails = {
        "old, sent": (old, old, None),
        "old, given up": (old, None, None),
        "old, still pending": (old, None, now),
        "recent, sent": (recent, recent, None),
    }
    for name, (created, sent, due) in mails.items():
        await execute(
            app,
            "INSERT INTO mail_outbox (recipient, subject, created_at, sent_at, next_attempt_at) "
            "VALUES ('a@example.com', :name, :created, :sent, :due)",
            name=name,
            created=created,
            sent=sent,
            due=due,
        )
    await execute(
        app, "INSERT INTO users (id, email, hashed_password) VALUES (1, 'a@x.example', 'x')"
    )
    tokens = {
        "expired long ago": old,
        "expired recently": recent,
        "live": now + timedelta(minutes=5),
    }
    for name, expires in tokens.items():
        await execute(
            app,
            "INSERT INTO one_time_tokens (token_hash, user_id, purpose, email, expires_at) "
            "VALUES (:name, 1, 'reset', 'a@x.example', :expires)",
            name=name,
            expires=expires,
        )
    async with app.state.session_factory() as db:
        counts = await sweep(db=db, settings=settings, now=now)
    assert counts is not None
    assert (counts.mails, counts.one_time_tokens) == (2, 1)
    kept = {row["subject"] for row in await rows(app, "SELECT subject FROM mail_outbox")}
    assert kept == {"old, still pending", "recent, sent"}
    left = {row["token_hash"] for row in await rows(app, "SELECT token_hash FROM one_time_tokens")}
    assert left == {"expired recently", "live"}
