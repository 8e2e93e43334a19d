"""Password recovery: a mail with a single-use link, then a new password.

Asking answers the same, in the same time, for every address: the request only
counts itself against the throttle and queues a row; whether an active account
has the address is looked up by the sender (app/services/account_mail.py).
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens, passwords, throttle
from app.auth.sessions import Client, end_all_sessions
from app.config import Settings
from app.exceptions import InvalidLink, TooManyMailRequests
from app.models import OneTimeToken, User, utcnow
from app.services import outbox
from app.services.users import normalize_email


async def request_password_reset(
    *, db: AsyncSession, settings: Settings, email: str, client: Client
) -> None:
    """Queue a reset mail for the address (sent only if an active account has it)."""
    email = normalize_email(email)
    await throttle.reserve(
        db=db,
        limits=throttle.mail_request_limits(
            settings=settings, purpose="recovery", email=email, client=client.address
        ),
        error=TooManyMailRequests,
    )
    outbox.enqueue(db=db, recipient=email, purpose="reset")
    await db.commit()
    outbox.wake_senders()


async def _owner(db: AsyncSession, token: OneTimeToken) -> User:
    """The token's user, if it may still act on it: active, same address."""
    user = await db.get(User, token.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise InvalidLink(one_time_tokens.NOT_VALID)
    if user.email != token.email:
        raise InvalidLink(one_time_tokens.ADDRESS_CHANGED)
    return user


async def reset_password(
    *, db: AsyncSession, settings: Settings, token: str, new_password: str
) -> None:
    """Spend the token: set the password, void the other reset links, end every
    session, and count the address as verified (the link reached it), in one
    transaction. The token is checked before bcrypt runs (a forged one costs no
    hash) and again, locked, after: of two uses at once one wins."""
    await one_time_tokens.usable(db=db, token=token, purpose="reset", now=utcnow())
    await db.rollback()  # no connection held while bcrypt runs
    hashed = await passwords.hash_password(new_password, settings=settings)
    now = utcnow()
    row = await one_time_tokens.usable(
        db=db, token=token, purpose="reset", now=now, for_update=True
    )
    user = await _owner(db, row)
    assert user.id is not None
    row.used_at = now
    db.add(row)
    await db.flush()
    await one_time_tokens.void(db=db, user_id=user.id, purpose="reset", now=now)
    user.hashed_password = hashed
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await db.flush()
    await end_all_sessions(db=db, user_id=user.id)
    await db.commit()
