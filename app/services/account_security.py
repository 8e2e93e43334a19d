""" "This wasn't me": the link an email change mails to the old address.

Following it takes the account back from whoever changed its address with a
stolen session and password: every session ends (device cookies too), every
outstanding link is voided (the pending change with it, and the undo links of
any later change), the address the link was mailed to becomes the account's
again (verified: the link reached it) if no other account took it meanwhile,
and the password is voided (replaced by a random one nobody knows), since
whoever made the change knew it: the owner sets a new one through password
recovery, which now mails the owner's address.
"""

import secrets

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens, passwords
from app.auth.sessions import end_all_sessions
from app.config import Settings
from app.models import OneTimeToken, utcnow
from app.services.users import find_by_email


async def secure_account(*, db: AsyncSession, settings: Settings, token: str) -> None:
    """Spend an undo link (see the module). The earliest change's link wins: it
    voids the undo links issued after it (those of later changes, mailed to
    addresses the account had only since), never those issued before."""
    now = utcnow()
    await one_time_tokens.usable(db=db, token=token, purpose="email_undo", now=now)
    await db.rollback()  # no connection held while bcrypt runs
    unknown = await passwords.hash_password(secrets.token_urlsafe(32), settings=settings)
    row, user = await one_time_tokens.take(db=db, token=token, purposes=("email_undo",), now=now)
    assert user.id is not None
    await one_time_tokens.void_links(db=db, user_id=user.id, now=now)
    await db.exec(
        update(OneTimeToken)
        .where(
            col(OneTimeToken.user_id) == user.id,
            col(OneTimeToken.purpose) == "email_undo",
            col(OneTimeToken.created_at) >= row.created_at,
            col(OneTimeToken.used_at).is_(None),
            col(OneTimeToken.voided_at).is_(None),
        )
        .values(voided_at=now)
    )
    if user.email != row.email:
        holder = await find_by_email(db=db, normalized_email=row.email)
        if holder is None:
            user.email, user.is_verified = row.email, True
    user.hashed_password = unknown
    user.updated_at = now
    db.add(user)
    await db.flush()
    await end_all_sessions(db=db, user_id=user.id)
    await db.commit()
