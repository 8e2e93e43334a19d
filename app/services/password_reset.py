"""Password recovery: a mail with a single-use link, then a new password.

Asking (`mail_requests.request_account_mail`) answers the same, in the same time, for
every address: the request only counts itself against the throttle and queues a
row; whether an active account has the address is looked up by the sender
(app/services/account_mail.py).
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens, passwords
from app.auth.sessions import end_all_sessions
from app.config import Settings
from app.mail import outbox
from app.models import utcnow
from app.services import account_mail, mail_limits


async def reset_password(
    *, db: AsyncSession, settings: Settings, token: str, new_password: str
) -> None:
    """Spend the token: set the password, void the other reset links, end every
    session, count the address as verified (the link reached it), and queue a
    notice to it, in one transaction. The token is checked before bcrypt runs (a forged one costs no
    hash) and again, locked, after: of two uses at once one wins."""
    await one_time_tokens.usable(db=db, token=token, purpose="reset", now=utcnow())
    await db.rollback()  # no connection held while bcrypt runs
    hashed = await passwords.hash_password(new_password, settings=settings)
    now = utcnow()
    user = await one_time_tokens.spend(db=db, token=token, purpose="reset", now=now)
    assert user.id is not None
    user.hashed_password = hashed
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await db.flush()
    await end_all_sessions(db=db, user_id=user.id)
    notice = account_mail.notice(settings, "notice_password_reset", user.email)
    outbox.enqueue_mail(db=db, recipient=user.email, mail=notice)
    await mail_limits.charge(db=db, settings=settings, email=user.email)
    await db.commit()
    outbox.wake_senders()
