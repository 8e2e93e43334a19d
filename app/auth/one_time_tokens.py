"""Single-use tokens mailed to a user: a password reset, an email verification,
the confirmation of a new address (`email_change`, mailed to the new address,
which it holds), and the "this wasn't me" link of an email change (`email_undo`,
mailed to the old address, which it holds).

A token is 32 random bytes (`secrets.token_urlsafe(32)`), handed out once (in
the mail) and stored only as its SHA-256: the table alone cannot be replayed. A
token does only what it was issued for (`purpose`), for the address it was
mailed to, once, before it expires; issuing a new one voids the previous ones of
that purpose (an undo link excepted: each change's stays valid).
"""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.exceptions import InvalidLink
from app.models import OneTimeToken, User

Purpose = Literal["reset", "verify", "email_change", "email_undo"]
# Links that act on the address they were mailed to: worthless once the account's
# address is another.
ADDRESS_BOUND: tuple[Purpose, ...] = ("reset", "verify")
TOKEN_BYTES = 32

NOT_VALID = "This link is not valid: request a new one"
ALREADY_USED = "This link was already used: request a new one"
REPLACED = "This link was replaced by a newer one: use the latest mail, or request a new one"
EXPIRED = "This link has expired: request a new one"
ADDRESS_CHANGED = "This link was sent to an address the account no longer uses"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def void(
    *, db: AsyncSession, user_id: int, purpose: Purpose | tuple[Purpose, ...], now: datetime
) -> None:
    """Void the user's unspent tokens of this purpose (or these); the caller commits."""
    purposes = purpose if isinstance(purpose, tuple) else (purpose,)
    await db.exec(
        update(OneTimeToken)
        .where(
            col(OneTimeToken.user_id) == user_id,
            col(OneTimeToken.purpose).in_(purposes),
            col(OneTimeToken.used_at).is_(None),
            col(OneTimeToken.voided_at).is_(None),
        )
        .values(voided_at=now)
    )


async def void_links(*, db: AsyncSession, user_id: int, now: datetime) -> None:
    """Void every link the account was mailed that acts on it (reset, verify, a
    pending address change): after its address changes or it is deactivated,
    none may come back to life when the address or the account does. The caller
    commits. (Undo links stay: they are how an old address takes its account back.)"""
    await void(db=db, user_id=user_id, purpose=(*ADDRESS_BOUND, "email_change"), now=now)


async def issue(
    *,
    db: AsyncSession,
    user_id: int,
    purpose: Purpose,
    email: str,
    lifetime: timedelta,
    now: datetime,
    void_previous: bool = True,
) -> str:
    """A new token (the only copy of it, to be mailed), voiding the previous ones
    of this purpose unless told not to; the caller commits."""
    if void_previous:
        await void(db=db, user_id=user_id, purpose=purpose, now=now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(
        OneTimeToken(
            token_hash=digest(token),
            user_id=user_id,
            purpose=purpose,
            email=email,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await db.flush()
    return token


async def usable(
    *,
    db: AsyncSession,
    token: str,
    purpose: Purpose | tuple[Purpose, ...],
    now: datetime,
    for_update: bool = False,
) -> OneTimeToken:
    """The token's row if it can be spent now, else InvalidLink saying why. A
    token of another purpose is as unknown as a forged one. `for_update` locks
    the row: of concurrent spenders, one wins and the others see it used."""
    purposes = purpose if isinstance(purpose, tuple) else (purpose,)
    query = select(OneTimeToken).where(
        col(OneTimeToken.token_hash) == digest(token), col(OneTimeToken.purpose).in_(purposes)
    )
    if for_update:
        query = query.with_for_update()
    row = (await db.exec(query)).one_or_none()
    if row is None:
        raise InvalidLink(NOT_VALID)
    if row.used_at is not None:
        raise InvalidLink(ALREADY_USED)
    if row.voided_at is not None:
        # Voided by a newer link, or by a change of the account's address.
        owner = await db.get(User, row.user_id)
        moved = row.purpose in ADDRESS_BOUND and owner is not None and owner.email != row.email
        raise InvalidLink(ADDRESS_CHANGED if moved else REPLACED)
    if row.expires_at <= now:
        raise InvalidLink(EXPIRED)
    return row


async def take(
    *, db: AsyncSession, token: str, purposes: tuple[Purpose, ...], now: datetime
) -> tuple[OneTimeToken, User]:
    """Spend a usable token of one of these purposes (locked: of concurrent
    spenders one wins): its row and its user, who must still be active and, for
    a link bound to an address (reset, verify), have the address it was mailed
    to. The caller voids what else it must, changes the user and commits."""
    row = await usable(db=db, token=token, purpose=purposes, now=now, for_update=True)
    user = await db.get(User, row.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise InvalidLink(NOT_VALID)
    if row.purpose in ADDRESS_BOUND and user.email != row.email:
        raise InvalidLink(ADDRESS_CHANGED)
    row.used_at = now
    db.add(row)
    await db.flush()
    return row, user


async def spend(*, db: AsyncSession, token: str, purpose: Purpose, now: datetime) -> User:
    """Spend a usable token and void the user's other tokens of its purpose; its
    user (see `take`). The caller changes the user and commits."""
    row, user = await take(db=db, token=token, purposes=(purpose,), now=now)
    await void(db=db, user_id=row.user_id, purpose=purpose, now=now)
    return user
