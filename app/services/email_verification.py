"""Email verification: a mail with a single-use link proves the account's address.

Registration and an email change queue the mail (app/services/outbox.py); anyone
may ask for it again by address (`mail_requests.request_account_mail`), which answers
the same whether or not an unverified account has it.
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens
from app.auth.sessions import end_all_sessions
from app.models import utcnow


async def verify_email(*, db: AsyncSession, token: str) -> None:
    """Spend the token and mark the address verified, if it is still the account's;
    and end every session opened before. Whoever registered the address (or
    re-addressed an account to it) before its owner followed the link keeps no
    session in an account the owner now proves is theirs (pre-account hijacking)."""
    now = utcnow()
    user = await one_time_tokens.spend(db=db, token=token, purpose="verify", now=now)
    assert user.id is not None
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await db.flush()
    await end_all_sessions(db=db, user_id=user.id)
    await db.commit()
