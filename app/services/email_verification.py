"""Email verification: a mail with a single-use link proves the account's address.

Registration and an email change queue the mail (app/services/outbox.py);
anyone may ask for it again by address, which answers the same whether or not
an unverified account has it.
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens, throttle
from app.auth.sessions import Client
from app.config import Settings
from app.exceptions import InvalidLink, TooManyMailRequests
from app.models import User, utcnow
from app.services import outbox
from app.services.users import normalize_email


async def request_verification(
    *, db: AsyncSession, settings: Settings, email: str, client: Client
) -> None:
    """Queue a verification mail (sent only if an active, unverified account has
    the address)."""
    email = normalize_email(email)
    await throttle.reserve(
        db=db,
        limits=throttle.mail_request_limits(
            settings=settings, purpose="verification", email=email, client=client.address
        ),
        error=TooManyMailRequests,
    )
    outbox.enqueue(db=db, recipient=email, purpose="verify")
    await db.commit()
    outbox.wake_senders()


async def verify_email(*, db: AsyncSession, token: str) -> None:
    """Spend the token and mark the address verified, if it is still the account's."""
    now = utcnow()
    row = await one_time_tokens.usable(
        db=db, token=token, purpose="verify", now=now, for_update=True
    )
    user = await db.get(User, row.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise InvalidLink(one_time_tokens.NOT_VALID)
    if user.email != row.email:
        raise InvalidLink(one_time_tokens.ADDRESS_CHANGED)
    row.used_at = now
    db.add(row)
    await db.flush()
    await one_time_tokens.void(db=db, user_id=row.user_id, purpose="verify", now=now)
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await db.commit()
