"""Passkeys: registering one (its ceremony's options, then the browser's answer
verified), listing, renaming and removing a user's; a sign-in's options; and,
for a sign-in's proof (app/auth/proofs.py `PasskeyProof`), what a presented
answer names and what a verified one spends.

The WebAuthn checks are app/auth/passkeys.py's (py_webauthn), the ceremonies
app/auth/passkey_ceremonies.py's: single use, one purpose, short-lived. A
passkey is never the last way in that is removed (409), as an OpenID link is
not (app/services/oidc_accounts.py).
"""

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import passkey_ceremonies, passkeys, passwords
from app.config import Settings
from app.database.db import flush_unless_taken
from app.exceptions import (
    LastSignInMethod,
    NotFound,
    PasskeyRegistrationRefused,
    PasskeyTaken,
)
from app.models import (
    OidcIdentity,
    Passkey,
    PasskeyCeremony,
    User,
    WebauthnUserHandle,
    utcnow,
)
from app.policy import Viewer
from app.schema.audit import EventType
from app.schema.passkeys import CeremonyOptions, PasskeyOut, RegistrationResponseJson
from app.schema.passkeys import credential_json as as_browser_json
from app.services import audit

DEFAULT_NAME = "Passkey"
LAST_PASSKEY = (
    "This passkey is the account's last way to sign in: set a password first "
    "(password recovery mails a link), or add another passkey, then remove it"
)


# --- Registering ---------------------------------------------------------------------


async def _user_handle(*, db: AsyncSession, user_id: int) -> bytes:
    """The user's WebAuthn user handle, made (random) the first time it is asked
    for; of two first times at once, one makes it and both read it."""
    await db.exec(
        upsert(WebauthnUserHandle)
        .values(user_id=user_id, handle=secrets.token_bytes(passkeys.USER_HANDLE_BYTES))
        .on_conflict_do_nothing(index_elements=[col(WebauthnUserHandle.user_id)])
    )
    handle: bytes = (
        await db.exec(
            select(col(WebauthnUserHandle.handle)).where(col(WebauthnUserHandle.user_id) == user_id)
        )
    ).one()
    return handle


async def registration_options(
    *, db: AsyncSession, settings: Settings, viewer: Viewer
) -> CeremonyOptions:
    """Start registering a passkey for the viewer: a ceremony for them alone, and
    the options for `navigator.credentials.create()` (their passkeys excluded)."""
    user = await db.get(User, viewer.id)
    if user is None:
        raise NotFound("User not found")
    handle = await _user_handle(db=db, user_id=viewer.id)
    existing = (
        await db.exec(
            select(col(Passkey.credential_id), col(Passkey.transports)).where(
                col(Passkey.user_id) == viewer.id
            )
        )
    ).all()
    challenge = passkey_ceremonies.new_challenge()
    ceremony = await passkey_ceremonies.issue(
        db=db,
        purpose="register",
        user_id=viewer.id,
        challenge=challenge,
        lifetime=settings.PASSKEY_CEREMONY_TTL,
        now=utcnow(),
    )
    options = passkeys.registration_options(
        settings=settings,
        user_handle=handle,
        user_name=user.email,
        display_name=user.full_name or user.email,
        challenge=challenge,
        exclude=[(credential_id, transports) for credential_id, transports in existing],
    )
    await db.commit()
    return CeremonyOptions(ceremony=ceremony, public_key=options)


async def register(
    *,
    db: AsyncSession,
    settings: Settings,
    viewer: Viewer,
    ceremony: str,
    credential: RegistrationResponseJson,
    name: str | None,
) -> PasskeyOut:
    """Finish the viewer's registration: the ceremony is spent (whatever follows),
    the browser's answer verified against its challenge, and the passkey stored.
    400 if the ceremony or the answer does not hold; 409 if the passkey is
    registered already (to anyone)."""
    challenge = await passkey_ceremonies.take(
        db=db, ceremony=ceremony, purpose="register", user_id=viewer.id, now=utcnow()
    )
    await db.commit()
    if challenge is None:
        raise PasskeyRegistrationRefused(
            "the ceremony is unknown, expired, already used, or not this account's registration"
        )
    try:
        verified = passkeys.verify_registration(
            settings=settings, credential=as_browser_json(credential), challenge=challenge
        )
    except passkeys.PasskeyCheckFailed as failed:
        raise PasskeyRegistrationRefused(failed.detail) from None
    passkey = Passkey(
        user_id=viewer.id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        transports=verified.transports,
        backed_up=verified.backed_up,
        name=name or DEFAULT_NAME,
    )
    db.add(passkey)
    await flush_unless_taken(db, PasskeyTaken)
    audit.record(
        db,
        EventType.PASSKEY_REGISTERED,
        actor=viewer,
        target=viewer.id,
        details={"passkey_id": str(passkey.id), "name": passkey.name},
    )
    await db.commit()
    return PasskeyOut.model_validate(passkey)


# --- The user's passkeys -------------------------------------------------------------


async def list_passkeys(*, db: AsyncSession, viewer: Viewer) -> list[PasskeyOut]:
    """The viewer's passkeys, oldest first."""
    rows = await db.exec(
        select(Passkey)
        .where(col(Passkey.user_id) == viewer.id)
        .order_by(col(Passkey.created_at), col(Passkey.id))
    )
    return [PasskeyOut.model_validate(row) for row in rows]


async def rename(
    *, db: AsyncSession, viewer: Viewer, passkey_id: uuid.UUID, name: str
) -> PasskeyOut:
    """A new name for one of the viewer's passkeys; another's, or none, is a 404."""
    renamed = (
        await db.exec(
            update(Passkey)
            .where(col(Passkey.id) == passkey_id, col(Passkey.user_id) == viewer.id)
            .values(name=name)
            .returning(Passkey)
        )
    ).scalar_one_or_none()
    if renamed is None:
        raise NotFound("Passkey not found")
    out = PasskeyOut.model_validate(renamed)
    audit.record(
        db,
        EventType.PASSKEY_RENAMED,
        actor=viewer,
        target=viewer.id,
        details={"passkey_id": str(passkey_id), "name": name},
    )
    await db.commit()
    return out


async def count_of(*, db: AsyncSession, user_id: int) -> int:
    """How many passkeys sign in to the account."""
    count: int = (
        await db.exec(
            select(func.count()).select_from(Passkey).where(col(Passkey.user_id) == user_id)
        )
    ).one()
    return count


async def remove(*, db: AsyncSession, viewer: Viewer, passkey_id: uuid.UUID) -> None:
    """Remove one of the viewer's passkeys: it no longer signs in. Never the last
    way in: an account with no password, no OpenID link and no other passkey
    keeps it (409). Another's passkey, or none, is a 404."""
    user = await db.get(User, viewer.id, with_for_update=True)  # one removal at a time
    if user is None:
        raise NotFound("User not found")
    passkey = await db.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != viewer.id:
        raise NotFound("Passkey not found")
    links = (
        await db.exec(
            select(func.count())
            .select_from(OidcIdentity)
            .where(col(OidcIdentity.user_id) == viewer.id)
        )
    ).one()
    others = await count_of(db=db, user_id=viewer.id) - 1
    if not others and not links and not passwords.has_password(user.hashed_password):
        raise LastSignInMethod(LAST_PASSKEY)
    await db.exec(delete(Passkey).where(col(Passkey.id) == passkey_id))
    audit.record(
        db,
        EventType.PASSKEY_REMOVED,
        actor=viewer,
        target=viewer.id,
        details={"passkey_id": str(passkey_id), "name": passkey.name},
    )
    await db.commit()


async def remove_all(*, db: AsyncSession, user_id: int) -> int:
    """Every passkey of the account, and its registrations under way, gone (an
    account taken back from whoever had it: app/services/oidc_accounts.py's
    claim, app/services/account_mail.py's "this wasn't me"); how many passkeys.
    The caller commits."""
    removed = await db.exec(delete(Passkey).where(col(Passkey.user_id) == user_id))
    await db.exec(delete(PasskeyCeremony).where(col(PasskeyCeremony.user_id) == user_id))
    return removed.rowcount


# --- Signing in ----------------------------------------------------------------------


async def login_options(*, db: AsyncSession, settings: Settings) -> CeremonyOptions:
    """Start a sign-in with a passkey: a ceremony that names no account, and the
    options for `navigator.credentials.get()` (any passkey of this site)."""
    challenge = passkey_ceremonies.new_challenge()
    ceremony = await passkey_ceremonies.issue(
        db=db,
        purpose="login",
        user_id=None,
        challenge=challenge,
        lifetime=settings.PASSKEY_CEREMONY_TTL,
        now=utcnow(),
    )
    options = passkeys.authentication_options(settings=settings, challenge=challenge)
    await db.commit()
    return CeremonyOptions(ceremony=ceremony, public_key=options)


@dataclass(frozen=True, slots=True)
class StoredPasskey:
    """What a sign-in's answer is checked against: the passkey and its account's
    user handle."""

    id: uuid.UUID
    public_key: bytes
    sign_count: int
    user_handle: bytes | None


@dataclass(frozen=True, slots=True)
class PresentedPasskey:
    """A sign-in's answer presented: its ceremony's challenge (None: forged,
    spent, expired, or a registration's), the passkey it names and its account
    (None: no such passkey)."""

    challenge: bytes | None
    passkey: StoredPasskey | None
    user: User | None


async def present(
    *, db: AsyncSession, ceremony: str, credential_id: bytes | None
) -> PresentedPasskey:
    """Take the sign-in's ceremony (spent from now on, whatever the answer) and
    read the passkey the answer names; the caller commits before checking it."""
    challenge = await passkey_ceremonies.take(
        db=db, ceremony=ceremony, purpose="login", user_id=None, now=utcnow()
    )
    if credential_id is None:
        return PresentedPasskey(challenge=challenge, passkey=None, user=None)
    row = (
        await db.exec(
            select(Passkey, User, col(WebauthnUserHandle.handle))
            .join(User, col(User.id) == col(Passkey.user_id))
            .outerjoin(WebauthnUserHandle, col(WebauthnUserHandle.user_id) == col(User.id))
            .where(col(Passkey.credential_id) == credential_id)
        )
    ).one_or_none()
    if row is None:
        return PresentedPasskey(challenge=challenge, passkey=None, user=None)
    passkey, user, handle = row
    return PresentedPasskey(
        challenge=challenge,
        passkey=StoredPasskey(
            id=passkey.id,
            public_key=passkey.public_key,
            sign_count=passkey.sign_count,
            user_handle=handle,
        ),
        user=user,
    )


@dataclass(frozen=True, slots=True)
class PasskeyUse:
    """A verified sign-in: moves the passkey's signature counter to the one its
    authenticator just reported, and marks it used, in the transaction that
    opens the session. Conditional: only forward (or 0 to 0, an authenticator
    that keeps no counter), so of two assertions with one counter value (a cloned
    authenticator, or a replay) at most one opens a session."""

    passkey_id: uuid.UUID
    sign_count: int
    backed_up: bool

    async def spend(self, db: AsyncSession) -> bool:
        counter = col(Passkey.sign_count)
        forward = counter < self.sign_count if self.sign_count else counter == 0
        moved = await db.exec(
            update(Passkey)
            .where(col(Passkey.id) == self.passkey_id, forward)
            .values(sign_count=self.sign_count, last_used_at=utcnow(), backed_up=self.backed_up)
            .returning(col(Passkey.id))
        )
        return moved.scalar_one_or_none() is not None
