"""The token flow, whatever proves the user and whatever carries the tokens:
sign in (any proof of app/auth/proofs.py, throttled, then one session opened),
rotate refresh tokens, log out, list and revoke sessions, read access tokens.
Bearer and cookie clients share every function here; none reads a request or a
cookie (the transports do: app/auth/transports.py, app/auth/cookies.py).

Every login opens an `AuthSession`; its refresh tokens form one rotation family.
Access tokens name their session (`sid`), so revoking it ends them at once.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Never, overload

from sqlalchemy import and_, bindparam, or_, update
from sqlalchemy import select as select_columns  # any number of columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import api_keys, login_challenges, sessions, throttle, tokens
from app.auth.proofs import Proof, Proven, SecondStepRequired
from app.auth.sessions import (
    Client,
    OpenedSession,
    end_all_sessions,
    issue_pair,
    open_auth_session,
    revoke_sessions,
)
from app.config import Settings
from app.database.reads import ReadPool, driver_sql
from app.exceptions import (
    EmailNotVerified,
    InvalidCredentials,
    NotAuthenticated,
    NotFound,
    ServiceUnavailable,
    TooManyAttempts,
)
from app.mail import outbox
from app.models import ApiKey, AuthenticatedUser, AuthSession, RefreshToken, User, utcnow
from app.observability import metrics
from app.policy import ROLE_PERMISSIONS, Viewer, role_permissions_column
from app.schema.audit import EventType
from app.schema.auth import SessionOut, TokenPair
from app.services import account_mail, audit
from app.services import users as users_service


@dataclass(frozen=True, slots=True)
class Login:
    """An opened session, whatever proved the user: its id and first token pair,
    for a transport to carry."""

    session_id: uuid.UUID
    pair: TokenPair
    user: User
    # A device cookie to hand the client, or None: it already holds a valid one.
    device_token: str | None


@dataclass(frozen=True, slots=True)
class SecondStepChallenge(SecondStepRequired):
    """A sign-in whose first step held and that owes a second: no session yet,
    and the single-use challenge the second step presents with its code
    (app/auth/login_challenges.py), valid `expires_in` seconds."""

    challenge: str
    expires_in: int


def _known_device(
    device_token: str | None, user: User | None, *, settings: Settings
) -> tokens.DeviceToken | None:
    """The device cookie's token if it marks a device of this account under its
    current credentials: issued to this user, and since the last change that ended
    every session (a password change or reset, logout-all, an admin). Else None:
    a stolen or stale cookie is an unknown device like any other."""
    if not device_token or user is None:
        return None
    try:
        device = tokens.DeviceToken.decode(device_token, settings=settings)
    except tokens.InvalidToken:
        return None
    if device.user_id != user.id or device.session_epoch != user.session_epoch:
        return None
    return device


def _device_token_for(
    user: User, device: tokens.DeviceToken | None, *, settings: Settings
) -> str | None:
    """A new device cookie, unless the client holds a valid one already."""
    if device is not None:
        return None
    assert user.id is not None
    return tokens.DeviceToken.new(user_id=user.id, session_epoch=user.session_epoch).encode(
        settings=settings, issued_at=utcnow()
    )


async def register(
    *,
    db: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    full_name: str | None,
    client: Client,
) -> Login:
    """Create the account and its first session in one transaction, with the
    verification mail queued in it if the address's mail limit has room (else
    none: the account can ask for it later)."""
    user = await users_service.create_user(
        db=db, settings=settings, email=email, password=password, full_name=full_name
    )
    assert user.id is not None
    opened = await open_auth_session(db=db, settings=settings, user_id=user.id, client=client)
    audit.record(db, EventType.REGISTERED, actor=user.id, target=user.id)
    await account_mail.queue_verification(db=db, settings=settings, email=user.email)
    await db.commit()
    outbox.wake_senders()
    return _login(opened, user, None, settings=settings)


def _login(
    opened: OpenedSession, user: User, device: tokens.DeviceToken | None, *, settings: Settings
) -> Login:
    return Login(
        session_id=opened.id,
        pair=opened.pair,
        user=user,
        device_token=_device_token_for(user, device, settings=settings),
    )


async def _refusal(
    db: AsyncSession,
    *,
    user: User | None,
    reason: str,
    error: type[InvalidCredentials] = InvalidCredentials,
    details: dict[str, str] | None = None,
    refused: InvalidCredentials | None = None,
) -> InvalidCredentials:
    """Record a refused login in a transaction of its own (its attempt is already
    counted and committed) and return the error to raise: the same for every
    reason of a proof, which only the audit trail keeps, unless the proof raised
    its own kind of error (`refused`, a passkey's saying which check failed)."""
    target = user.id if user else None  # read before the rollback expires the row
    await db.rollback()
    audit.record(
        db,
        EventType.LOGIN_FAILED,
        actor=None,
        target=target,
        details={"reason": reason, **(details or {})},
    )
    await db.commit()
    return refused if isinstance(refused, error) else error()


async def _open_session_if_unchanged(
    *, db: AsyncSession, settings: Settings, user_id: int, epoch: int, client: Client
) -> OpenedSession | None:
    """Open a session only if the account is as it was when its proof was read:
    still there, active, and no session-ending change (password, logout-all,
    deactivation) since; None if not. FOR SHARE makes that change wait for this
    commit, or this read wait for that one, so the two never interleave."""
    current = (
        await db.exec(
            select(col(User.is_active), col(User.session_epoch))
            .where(col(User.id) == user_id)
            .with_for_update(read=True)
        )
    ).one_or_none()
    if current is None:
        return None
    is_active, current_epoch = current
    if not is_active or current_epoch != epoch:
        return None
    return await open_auth_session(db=db, settings=settings, user_id=user_id, client=client)


@overload
async def sign_in(
    *,
    db: AsyncSession,
    settings: Settings,
    proof: Proof[Never],
    client: Client,
    device_token: str | None = None,
) -> Login: ...
@overload
async def sign_in(
    *,
    db: AsyncSession,
    settings: Settings,
    proof: Proof[SecondStepRequired],
    client: Client,
    device_token: str | None = None,
) -> Login | SecondStepChallenge: ...
async def sign_in(
    *,
    db: AsyncSession,
    settings: Settings,
    proof: Proof[SecondStepRequired],
    client: Client,
    device_token: str | None = None,
) -> Login | SecondStepChallenge:
    """The one login (`_sign_in`), counted by its proof and outcome."""
    outcome = "error"  # the database failed, say
    try:
        signed_in = await _sign_in(
            db=db, settings=settings, proof=proof, client=client, device_token=device_token
        )
    except InvalidCredentials:
        outcome = "refused"
        raise
    except TooManyAttempts:
        outcome = "throttled"
        raise
    except EmailNotVerified:
        outcome = "email_not_verified"
        raise
    except ServiceUnavailable:
        outcome = "busy"
        raise
    else:
        outcome = "second_step" if isinstance(signed_in, SecondStepChallenge) else "succeeded"
        return signed_in
    finally:
        metrics.LOGINS.labels(proof.method, outcome).inc()


async def _sign_in(
    *,
    db: AsyncSession,
    settings: Settings,
    proof: Proof[SecondStepRequired],
    client: Client,
    device_token: str | None = None,
) -> Login | SecondStepChallenge:
    """The one login, whatever the proof (app/auth/proofs.py) and whatever carries
    the tokens. Unknown account and failed proof cost the same and answer the same.

    Three steps, so no database connection is held while the proof is checked
    (bcrypt): read the account and count the attempt against the throttle
    (commit); check the proof; open the session if the account has not changed
    meanwhile, spending what the proof holds only once (commit). A proof that
    asks for a second step opens none: it gets a challenge for that step, whose
    own proof then signs in through here."""
    claim = await proof.claim(db)
    device = _known_device(device_token, claim.user, settings=settings)
    attempt = await throttle.reserve(
        db=db,
        limits=throttle.login_limits(
            settings=settings,
            identity=claim.identity,
            client=client.address,
            user_id=claim.user.id if claim.user else None,
            device=device,
        ),
    )
    await db.commit()
    try:
        outcome = await proof.prove(claim, settings=settings)
    except InvalidCredentials as refused:
        raise await _refusal(
            db,
            user=claim.user,
            reason=refused.reason or proof.refusal(claim),
            error=proof.refused_with,
            details=proof.audit_details(),
            refused=refused,
        ) from None
    user = outcome.user
    assert user.id is not None
    if not user.is_active:
        raise await _refusal(db, user=user, reason="account_inactive", error=proof.refused_with)
    if settings.LOGIN_REQUIRES_VERIFIED_EMAIL and not user.is_verified:
        # Only the proof's holder learns this; their right guess is forgiven.
        await throttle.forgive(db=db, attempt=attempt)
        audit.record(
            db,
            EventType.LOGIN_FAILED,
            actor=None,
            target=user.id,
            details={"reason": "email_not_verified"},
        )
        await db.commit()
        raise EmailNotVerified()
    if not isinstance(outcome, Proven):
        # The first step holds (forgiven as a right guess); the next is its own proof.
        await throttle.forgive(db=db, attempt=attempt)
        challenge = await login_challenges.issue(
            db=db,
            user_id=user.id,
            session_epoch=user.session_epoch,
            lifetime=settings.TOTP_CHALLENGE_TTL,
            now=utcnow(),
        )
        await db.commit()
        return SecondStepChallenge(
            user=user,
            methods=outcome.methods,
            challenge=challenge,
            expires_in=int(settings.TOTP_CHALLENGE_TTL.total_seconds()),
        )
    if outcome.single_use is not None and not await outcome.single_use.spend(db):
        raise await _refusal(db, user=user, reason="already_used", error=proof.refused_with)
    opened = await _open_session_if_unchanged(
        db=db, settings=settings, user_id=user.id, epoch=user.session_epoch, client=client
    )
    if opened is None:
        raise await _refusal(db, user=user, reason="account_changed", error=proof.refused_with)
    await throttle.forgive(db=db, attempt=attempt)
    new_device = device is None and not await audit.signed_in_from_before(
        db=db, user_id=user.id, client=client, since=utcnow() - settings.AUDIT_RETENTION
    )
    audit.record(
        db,
        EventType.LOGIN_SUCCEEDED,
        actor=user.id,
        target=user.id,
        details={
            "method": proof.method,
            **proof.audit_details(),
            "session_id": str(opened.id),
            "new_device": new_device,
        },
    )
    if new_device:
        await account_mail.queue_sign_in_notice(db=db, settings=settings, user=user, client=client)
    await db.commit()
    if new_device:
        outbox.wake_senders()
    return _login(opened, user, device, settings=settings)


# The tables, not the ORM classes, for `refresh`'s statement: the ORM cannot read
# the RETURNING of an UPDATE that has an UPDATE in its WITH clause.
_SESSIONS = AuthSession.metadata.tables["auth_sessions"]
_REFRESH_TOKENS = RefreshToken.metadata.tables["refresh_tokens"]


async def refresh(
    *, db: AsyncSession, settings: Settings, refresh_token: str, client: Client
) -> TokenPair:
    """Spend a refresh token for a new pair. Single use, atomic: the conditional
    UPDATE lets exactly one of any number of concurrent callers win. Presenting a
    spent token revokes its whole family (RFC 9700 §4.14.2), unless it comes back
    from the address that spent it within REFRESH_REUSE_GRACE: a client's double
    submit is refused without ending the session the first request renewed.

    The same statement renews the live session: last used now, by this client,
    and alive until the new refresh token expires (rolled back if none is spent)."""
    claims = tokens.RefreshToken.presented(refresh_token, settings=settings)
    now = utcnow()
    renewed_session = (
        update(_SESSIONS)
        .where(
            _SESSIONS.c.id == claims.session_id,
            _SESSIONS.c.user_id == claims.user_id,
            _SESSIONS.c.revoked_at.is_(None),
        )
        .values(
            last_used_at=now,
            expires_at=now + settings.REFRESH_TOKEN_TTL,
            last_user_agent=client.user_agent,
            last_client_address=client.address,
        )
        .returning(_SESSIONS.c.id)
        .cte("renewed_session")
    )
    spent = await db.exec(
        update(_REFRESH_TOKENS)
        .where(
            _REFRESH_TOKENS.c.jti == claims.jti,
            _REFRESH_TOKENS.c.session_id == claims.session_id,
            _REFRESH_TOKENS.c.used_at.is_(None),
            _REFRESH_TOKENS.c.expires_at > now,
            _REFRESH_TOKENS.c.session_id.in_(select_columns(renewed_session.c.id)),
        )
        .values(used_at=now, used_by=client.address)
        .returning(_REFRESH_TOKENS.c.session_id)
    )
    if spent.scalar_one_or_none() is None:
        await db.rollback()
        await _revoke_family_if_reused(
            db=db, settings=settings, claims=claims, client=client.address
        )
        raise NotAuthenticated()
    user = await db.get(User, claims.user_id)
    if user is None or not user.is_active:
        await db.rollback()
        raise NotAuthenticated()
    pair = issue_pair(
        db=db,
        settings=settings,
        user_id=claims.user_id,
        auth_session_id=claims.session_id,
        now=now,
    )
    await db.commit()
    return pair


async def _revoke_family_if_reused(
    *, db: AsyncSession, settings: Settings, claims: tokens.RefreshToken, client: str
) -> None:
    row = await db.get(RefreshToken, claims.jti)
    if row is None or row.used_at is None:
        return
    double_submit = row.used_by == client and utcnow() - row.used_at <= settings.REFRESH_REUSE_GRACE
    if not double_submit:
        ended = await revoke_sessions(
            db=db,
            where=and_(
                col(AuthSession.id) == claims.session_id,
                col(AuthSession.user_id) == claims.user_id,
            ),
        )
        if ended:
            audit.record(
                db,
                EventType.REFRESH_REUSED,
                actor=None,
                target=claims.user_id,
                details={"session_id": str(claims.session_id)},
            )
        await db.commit()


async def logout(*, db: AsyncSession, settings: Settings, refresh_token: str) -> None:
    """Revoke the session (the whole rotation family) the refresh token belongs to."""
    claims = tokens.RefreshToken.presented(refresh_token, settings=settings)
    ended = await revoke_sessions(
        db=db,
        where=and_(
            col(AuthSession.id) == claims.session_id, col(AuthSession.user_id) == claims.user_id
        ),
    )
    if ended:
        audit.record(
            db,
            EventType.LOGOUT,
            actor=claims.user_id,
            target=claims.user_id,
            details={"session_id": str(claims.session_id)},
        )
    await db.commit()


async def logout_everywhere(*, db: AsyncSession, viewer: Viewer) -> None:
    await end_all_sessions(db=db, user_id=viewer.id)
    audit.record(db, EventType.LOGOUT_EVERYWHERE, actor=viewer, target=viewer.id)
    await db.commit()


async def list_sessions(*, reader: ReadPool, user: AuthenticatedUser) -> list[SessionOut]:
    """The caller's live sessions, newest first, the one of this request marked."""
    return await sessions.live_sessions(
        reader=reader, user_id=user.id, current_session_id=user.session_id
    )


async def end_session(*, db: AsyncSession, viewer: Viewer, session_id: uuid.UUID) -> None:
    """End one of the viewer's live sessions (the current one too: a logout). Any
    other id, another user's included, is not found."""
    if not await sessions.end_session(db=db, user_id=viewer.id, session_id=session_id):
        raise NotFound("Session not found")
    audit.record(
        db,
        EventType.SESSION_ENDED,
        actor=viewer,
        target=viewer.id,
        details={"session_id": str(session_id)},
    )
    await db.commit()


# The caller's row, if the user is active and the token's session live, with the
# permissions of the roles they hold (app/policy.py): the one statement of every
# authenticated request, compiled once to the driver's SQL.
_USER_COLUMNS = (
    col(User.id),
    col(User.email),
    col(User.full_name),
    col(User.hashed_password),
    col(User.is_active),
    col(User.is_superuser),
    col(User.session_epoch),
    col(User.is_verified),
    col(User.created_at),
)
_AUTHENTICATED_USER = (
    select_columns(*_USER_COLUMNS, role_permissions_column())
    .join(AuthSession, col(AuthSession.user_id) == col(User.id))
    .where(
        col(User.id) == bindparam("user_id"),
        col(User.is_active).is_(True),
        col(AuthSession.id) == bindparam("session_id"),
        col(AuthSession.revoked_at).is_(None),
    )
)


_AUTHENTICATED_USER_SQL = driver_sql(_AUTHENTICATED_USER)


# The owner of an API key, by the key's hash, if the owner is active and the key
# unexpired, with their roles' permissions and the key's scopes: the one
# statement of a request sent with a key. The same statement marks the key used,
# at most once a minute (a WITH clause's UPDATE runs whether or not the SELECT
# reads it): most requests write nothing.
_KEY_TOUCH = (
    update(ApiKey)
    .where(
        col(ApiKey.key_hash) == bindparam("key_hash"),
        or_(
            col(ApiKey.last_used_at).is_(None),
            col(ApiKey.last_used_at) < bindparam("stale_before"),
        ),
    )
    .values(last_used_at=bindparam("now"))
    .returning(col(ApiKey.id))
    .cte("touched")
)
_KEY_OWNER = (
    select_columns(
        *_USER_COLUMNS,
        role_permissions_column(),
        col(ApiKey.id).label("api_key_id"),
        col(ApiKey.scopes).label("key_scopes"),
    )
    .select_from(ApiKey)
    .join(User, col(User.id) == col(ApiKey.user_id))
    .where(
        col(ApiKey.key_hash) == bindparam("key_hash"),
        col(User.is_active).is_(True),
        or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > bindparam("now")),
    )
    .add_cte(_KEY_TOUCH)
)
_KEY_OWNER_SQL = driver_sql(_KEY_OWNER)
# How often a key's last_used_at is written, at most.
KEY_USE_RESOLUTION = timedelta(minutes=1)


async def user_from_api_key(*, reader: ReadPool, key: str) -> AuthenticatedUser:
    """The active owner of an unexpired API key, acting within its scopes. A key
    that is malformed or fails its checksum is refused without a query; a
    revoked (deleted) one is unknown."""
    if not api_keys.is_well_formed(key):
        raise NotAuthenticated()
    now = utcnow()
    row = await reader.fetch_one(
        _KEY_OWNER_SQL,
        {
            "key_hash": api_keys.hash_key(key),
            "now": now,
            "stale_before": now - KEY_USE_RESOLUTION,
        },
    )
    if row is None:
        raise NotAuthenticated()
    row[ROLE_PERMISSIONS] = tuple(row[ROLE_PERMISSIONS])
    row["key_scopes"] = tuple(row["key_scopes"])
    return AuthenticatedUser(**row, session_id=None)


async def user_from_access_token(
    *, reader: ReadPool, settings: Settings, token: str
) -> AuthenticatedUser:
    """The active user behind a valid access token whose session is still live."""
    claims = tokens.AccessToken.presented(token, settings=settings)
    row = await reader.fetch_one(
        _AUTHENTICATED_USER_SQL,
        {"user_id": claims.user_id, "session_id": claims.session_id},
    )
    if row is None:
        raise NotAuthenticated()
    row[ROLE_PERMISSIONS] = tuple(row[ROLE_PERMISSIONS])
    return AuthenticatedUser(**row, session_id=claims.session_id)
