"""Email verification: a mail with a single-use link proves an address.

Registration and an admin's change of address queue the mail
(app/services/outbox.py); anyone may ask for it again by address
(`mail_requests.request_account_mail`), which answers the same whether or not an
unverified account has it. A user's own change of address mails its own link
(purpose `email_change`, app/services/users.update_me), spent here too: it makes
the address the account's.
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens
from app.auth.sessions import end_all_sessions
from app.database.db import flush_unless_taken
from app.exceptions import EmailTaken
from app.models import utcnow


async def verify_email(*, db: AsyncSession, token: str) -> None:
    """Spend the token: a verification link marks its address verified, if it is
    still the account's; an email-change link makes its address the account's,
    verified. Either way every session opened before ends (the device cookies
    with them): whoever registered the address, or re-addressed an account to
    it, before its owner followed the link keeps no session in an account the
    owner just proved is theirs (pre-account hijacking). An email change also
    voids the account's other outstanding links."""
    now = utcnow()
    row, user = await one_time_tokens.take(
        db=db, token=token, purposes=("verify", "email_change"), now=now
    )
    assert user.id is not None
    if row.purpose == "email_change":
        user.email = row.email
        await one_time_tokens.void_links(db=db, user_id=user.id, now=now)
    else:
        await one_time_tokens.void(db=db, user_id=user.id, purpose="verify", now=now)
    user.is_verified = True
    user.updated_at = now
    db.add(user)
    await flush_unless_taken(db, EmailTaken)  # another account took the address meanwhile
    await end_all_sessions(db=db, user_id=user.id)
    await db.commit()
