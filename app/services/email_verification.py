"""Email verification: a mail with a single-use link proves the account's address.

Registration and an email change queue the mail (app/services/outbox.py); anyone
may ask for it again by address (`mail_requests.request_account_mail`), which answers
the same whether or not an unverified account has it.
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens
from app.models import utcnow


async def verify_email(*, db: AsyncSession, token: str) -> None:
    """Spend the token and mark the address verified, if it is still the account's."""
    now = utcnow()
    user = await one_time_tokens.spend(db=db, token=token, purpose="verify", now=now)
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await db.commit()
