"""Taking an account back from whoever had it: every way in but its address,
gone, in the caller's transaction (the caller voids the password and commits).

Whoever held the account may have added a way in of their own before the owner
got it back: a second factor (whose codes only they can give: the owner, after
a password reset, would be locked out), API keys, passkeys, a link to their own
OpenID account, mailed links, sessions. The owner adds theirs again once signed
in; a provider whose verified address is the account's links again by itself.
Used by "this wasn't me" (app/services/account_mail.py) and by an OpenID claim
of an account whose address was never verified (app/services/oidc_accounts.py).
"""

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import one_time_tokens
from app.auth.sessions import end_all_sessions
from app.models import ApiKey, OidcIdentity, RecoveryCode, TotpCredential, utcnow
from app.services import passkeys as passkeys_service


async def remove_every_way_in(*, db: AsyncSession, user_id: int) -> None:
    for credential in (TotpCredential, RecoveryCode, ApiKey, OidcIdentity):
        await db.exec(delete(credential).where(col(credential.user_id) == user_id))
    await passkeys_service.remove_all(db=db, user_id=user_id)
    await one_time_tokens.void_links(db=db, user_id=user_id, now=utcnow())
    await end_all_sessions(db=db, user_id=user_id)
