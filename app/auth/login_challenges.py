"""The challenge a password login answers when the account has a second factor:
a single-use token for the second step to present with its code, instead of a
session.

Like a mailed token (app/auth/one_time_tokens.py, whose digest it shares), it is
32 random bytes handed out once and stored as its SHA-256 only. It lasts
TOTP_CHALLENGE_TTL; each code presented with it is counted before the code is
checked (one conditional UPDATE, so of concurrent guesses no more than
MAX_GUESSES are ever checked), and it is spent by another conditional UPDATE, so
of concurrent right answers exactly one opens a session. It also records the
account's session epoch: a password change or reset, logout-all or deactivation
since voids it.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.one_time_tokens import TOKEN_BYTES, digest
from app.models import LoginChallenge

# Codes a challenge takes; the next one, right or wrong, is refused unchecked.
MAX_GUESSES = 5


@dataclass(frozen=True, slots=True)
class Presented:
    """A challenge someone presented a code with: the account it names, and
    whether the code may be checked (`live`: unspent, unexpired, a guess left,
    now counted)."""

    id: uuid.UUID
    user_id: int
    session_epoch: int
    live: bool


async def issue(
    *, db: AsyncSession, user_id: int, session_epoch: int, lifetime: timedelta, now: datetime
) -> str:
    """A new challenge for the account (the only copy of it); the caller commits."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(
        LoginChallenge(
            token_hash=digest(token),
            user_id=user_id,
            session_epoch=session_epoch,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await db.flush()
    return token


async def present(*, db: AsyncSession, token: str, now: datetime) -> Presented | None:
    """Count a guess against the challenge if it can take one; None if there is
    no such challenge (forged, or swept). The caller commits the count before
    checking the code."""
    row = (
        await db.exec(
            select(
                col(LoginChallenge.id),
                col(LoginChallenge.user_id),
                col(LoginChallenge.session_epoch),
            ).where(col(LoginChallenge.token_hash) == digest(token))
        )
    ).one_or_none()
    if row is None:
        return None
    challenge_id, user_id, session_epoch = row
    counted = await db.exec(
        update(LoginChallenge)
        .where(
            col(LoginChallenge.id) == challenge_id,
            col(LoginChallenge.used_at).is_(None),
            col(LoginChallenge.expires_at) > now,
            col(LoginChallenge.guesses) < MAX_GUESSES,
        )
        .values(guesses=col(LoginChallenge.guesses) + 1)
        .returning(col(LoginChallenge.id))
    )
    live = counted.scalar_one_or_none() is not None
    return Presented(id=challenge_id, user_id=user_id, session_epoch=session_epoch, live=live)


async def spend(*, db: AsyncSession, challenge_id: uuid.UUID, now: datetime) -> bool:
    """Mark the challenge used, if nobody did and it has not expired: of
    concurrent spenders the first wins, the others wait for its commit and then
    find it used. The caller commits."""
    spent = await db.exec(
        update(LoginChallenge)
        .where(
            col(LoginChallenge.id) == challenge_id,
            col(LoginChallenge.used_at).is_(None),
            col(LoginChallenge.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(LoginChallenge.id))
    )
    return spent.scalar_one_or_none() is not None
