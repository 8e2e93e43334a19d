"""Which account an OpenID provider's sign-in is, and a user's links to providers.

The rules (docs/auth.md, "Sign in with OpenID Connect"), in order:

1. A known (provider, subject) is its linked user, whatever its address now is.
2. Otherwise the provider must assert a verified address (`email` with
   `email_verified: true`): else the sign-in is refused, nothing is created.
3. No account has the address: a new one is created, verified (the provider
   proved the address), with no password (password recovery sets one).
4. An account has the address and verified it: the provider's account is
   linked to it, and its owner is mailed a notice. Configuring a provider is
   trusting its `email_verified` for the addresses it asserts.
5. An account has the address but never verified it: whoever registered it
   never proved it was theirs, and the provider just proved it is this person's.
   The account is claimed, not joined: its password is voided, every session
   ends, and what its registrant could have set up to keep a way in (a second
   factor, passkeys, API keys, outstanding mailed links) is removed, as a
   verification link does (app/services/account_mail.verify_email: pre-account
   hijacking).
"""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import oidc, passwords
from app.config import Settings
from app.database.db import flush_unless_taken
from app.exceptions import EmailTaken, LastSignInMethod, NotFound
from app.models import OidcIdentity, User, utcnow
from app.policy import Viewer
from app.schema.audit import EventType
from app.schema.oidc import OidcLinkOut
from app.schema.users import normalize_email
from app.services import account_mail, audit, take_back
from app.services import passkeys as passkeys_service

How = Literal["known", "created", "linked", "claimed"]


@dataclass(frozen=True, slots=True)
class Resolved:
    user: User
    how: How


async def _linked_user(*, db: AsyncSession, identity: oidc.Identity) -> User | None:
    result = await db.exec(
        select(User)
        .join(OidcIdentity, col(OidcIdentity.user_id) == col(User.id))
        .where(
            col(OidcIdentity.provider) == identity.provider,
            col(OidcIdentity.subject) == identity.subject,
        )
    )
    return result.one_or_none()


async def _claim(*, db: AsyncSession, user: User) -> None:
    """Take an unverified account from whoever registered its address: no
    password, and no other way in of theirs (app/services/take_back.py)."""
    assert user.id is not None
    user.hashed_password = passwords.NO_PASSWORD
    user.is_verified = True
    user.updated_at = utcnow()
    db.add(user)
    await db.flush()
    await take_back.remove_every_way_in(db=db, user_id=user.id)
    await db.refresh(user)  # the session epoch moved on


async def resolve(
    *, db: AsyncSession, settings: Settings, identity: oidc.Identity
) -> Resolved | None:
    """The account this identity signs in to, linked, created or claimed by the
    rules above in the caller's transaction (the caller commits); None when the
    provider asserted no verified address for an identity not linked yet."""
    user = await _linked_user(db=db, identity=identity)
    if user is not None:
        return Resolved(user=user, how="known")
    if identity.email is None or not identity.email_verified:
        return None
    email = normalize_email(identity.email)
    user = (await db.exec(select(User).where(col(User.email) == email))).one_or_none()
    how: How
    if user is None:
        user = User(email=email, hashed_password=passwords.NO_PASSWORD, is_verified=True)
        db.add(user)
        await flush_unless_taken(db, EmailTaken)
        how = "created"
    elif user.is_verified:
        how = "linked"
    else:
        await _claim(db=db, user=user)
        how = "claimed"
    assert user.id is not None
    db.add(
        OidcIdentity(
            user_id=user.id, provider=identity.provider, subject=identity.subject, email=email
        )
    )
    await db.flush()
    audit.record(
        db,
        EventType.OIDC_LINKED,
        actor=None,
        target=user.id,
        details={"provider": identity.provider, "email": email, "how": how},
    )
    if how == "created":
        audit.record(db, EventType.REGISTERED, actor=user.id, target=user.id)
    if how == "linked":
        await account_mail.queue_oidc_linked_notice(
            db=db, settings=settings, user=user, provider=identity.provider
        )
    return Resolved(user=user, how=how)


async def list_links(*, db: AsyncSession, user_id: int) -> list[OidcLinkOut]:
    """The user's links, oldest first."""
    rows = await db.exec(
        select(OidcIdentity)
        .where(col(OidcIdentity.user_id) == user_id)
        .order_by(col(OidcIdentity.created_at), col(OidcIdentity.id))
    )
    return [OidcLinkOut.model_validate(row) for row in rows]


async def unlink(*, db: AsyncSession, viewer: Viewer, provider: str) -> None:
    """Remove the viewer's link to `provider`: it no longer signs in here. Never
    the last way in: an account with no password and no passkey keeps its only
    link (409)."""
    user = await db.get(User, viewer.id, with_for_update=True)  # one unlink at a time
    if user is None:
        raise NotFound("User not found")
    providers = (
        await db.exec(
            select(col(OidcIdentity.provider)).where(col(OidcIdentity.user_id) == viewer.id)
        )
    ).all()
    removing = sum(1 for name in providers if name == provider)
    if removing == 0:
        raise NotFound("No link to this provider")
    if (
        removing == len(providers)
        and not passwords.has_password(user.hashed_password)
        and not await passkeys_service.count_of(db=db, user_id=viewer.id)
    ):
        raise LastSignInMethod()
    await db.exec(
        delete(OidcIdentity).where(
            col(OidcIdentity.user_id) == viewer.id, col(OidcIdentity.provider) == provider
        )
    )
    audit.record(
        db, EventType.OIDC_UNLINKED, actor=viewer, target=viewer.id, details={"provider": provider}
    )
    await db.commit()
