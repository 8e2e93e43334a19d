"""A passkey ceremony under way: the challenge a registration's or a sign-in's
options gave the browser, kept server-side until the browser's answer comes.

The client holds an opaque ceremony id (32 random bytes, like a mailed token:
app/auth/one_time_tokens.py, whose digest it shares); the table keeps its
SHA-256 only, the challenge, the purpose and, for a registration, the user. It
lasts PASSKEY_CEREMONY_TTL and is taken once: `take` is one conditional
`DELETE … RETURNING` that matches the purpose (and the user), so of two answers
presented at once exactly one gets the challenge, a sign-in's ceremony never
finishes a registration (nor one user's registration another's), and a
ceremony presented for the wrong purpose stays where it was.
"""

import secrets
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.one_time_tokens import TOKEN_BYTES, digest
from app.models import PasskeyCeremony

Purpose = Literal["register", "login"]
# 32 random bytes: the WebAuthn spec asks for at least 16.
CHALLENGE_BYTES = 32


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


async def issue(
    *,
    db: AsyncSession,
    purpose: Purpose,
    user_id: int | None,
    challenge: bytes,
    lifetime: timedelta,
    now: datetime,
) -> str:
    """A new ceremony holding `challenge` (the only copy of its id); the caller commits."""
    ceremony = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(
        PasskeyCeremony(
            token_hash=digest(ceremony),
            purpose=purpose,
            user_id=user_id,
            challenge=challenge,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await db.flush()
    return ceremony


async def take(
    *, db: AsyncSession, ceremony: str, purpose: Purpose, user_id: int | None, now: datetime
) -> bytes | None:
    """The ceremony's challenge, the ceremony deleted in the caller's
    transaction; None if there is no such ceremony for this purpose (and user)
    that has not expired: forged, taken already, expired, or another's."""
    owner = col(PasskeyCeremony.user_id)
    taken = await db.exec(
        delete(PasskeyCeremony)
        .where(
            col(PasskeyCeremony.token_hash) == digest(ceremony),
            col(PasskeyCeremony.purpose) == purpose,
            owner.is_(None) if user_id is None else owner == user_id,
            col(PasskeyCeremony.expires_at) > now,
        )
        .returning(col(PasskeyCeremony.challenge))
    )
    challenge: bytes | None = taken.scalar_one_or_none()
    return challenge
