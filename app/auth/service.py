"""The token flow: log in, rotate refresh tokens, revoke sessions, read access tokens.

Every login opens an `AuthSession`; its refresh tokens form one rotation family.
Access tokens name their session (`sid`), so revoking it ends them at once.
"""

import hashlib

from sqlalchemy import and_, delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import passwords, tokens
from app.auth.sessions import issue_pair, open_session, revoke_all_sessions, revoke_sessions
from app.config import Settings
from app.exceptions import InvalidCredentials, NotAuthenticated, TooManyAttempts
from app.models.models import AuthSession, LoginFailure, RefreshToken, User, utcnow
from app.schema.auth import TokenPair
from app.services import users as users_service


def _throttle_key(email: str, client: str) -> str:
    # The lookup's own normalisation: every spelling that reaches the account
    # shares its throttle.
    email = users_service.normalize_email(email)
    return hashlib.sha256(f"{email}|{client}".encode()).hexdigest()


async def _check_throttle(*, session: AsyncSession, settings: Settings, key: str) -> None:
    since = utcnow() - settings.LOGIN_FAILURE_WINDOW
    count, oldest = (
        await session.exec(
            select(func.count(), func.min(col(LoginFailure.failed_at))).where(
                col(LoginFailure.key) == key, col(LoginFailure.failed_at) > since
            )
        )
    ).one()
    if count >= settings.LOGIN_MAX_FAILURES:
        retry_after = oldest + settings.LOGIN_FAILURE_WINDOW - utcnow()
        raise TooManyAttempts(retry_after_seconds=max(1, int(retry_after.total_seconds()) + 1))


async def _record_failure(*, session: AsyncSession, settings: Settings, key: str) -> None:
    await session.exec(
        delete(LoginFailure).where(
            col(LoginFailure.key) == key,
            col(LoginFailure.failed_at) <= utcnow() - settings.LOGIN_FAILURE_WINDOW,
        )
    )
    session.add(LoginFailure(key=key))
    await session.commit()


async def login(
    *, session: AsyncSession, settings: Settings, email: str, password: str, client: str
) -> TokenPair:
    """Identify by email, authenticate by password. Unknown email and wrong password
    cost the same and answer the same."""
    key = _throttle_key(email, client)
    await _check_throttle(session=session, settings=settings, key=key)
    user = await users_service.find_by_email(session=session, email=email)
    if user is None:
        await passwords.verify_against_dummy(password, rounds=settings.BCRYPT_ROUNDS)
        authenticated = False
    else:
        authenticated = await passwords.verify_password(password, user.hashed_password)
    if user is None or not authenticated or not user.is_active:
        await _record_failure(session=session, settings=settings, key=key)
        raise InvalidCredentials()
    await session.exec(delete(LoginFailure).where(col(LoginFailure.key) == key))
    pair = await open_session(session=session, settings=settings, user=user)
    await session.commit()
    return pair


def _read(token: str, *, settings: Settings, expected: tokens.TokenType) -> tokens.TokenClaims:
    try:
        return tokens.decode_token(token, settings=settings, expected_type=expected)
    except tokens.InvalidToken as exc:
        raise NotAuthenticated() from exc


async def refresh(*, session: AsyncSession, settings: Settings, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new pair. Single use, atomic: the conditional
    UPDATE lets exactly one of any number of concurrent callers win. Presenting a
    spent token revokes its whole family (RFC 9700 §4.14.2)."""
    claims = _read(refresh_token, settings=settings, expected=tokens.TokenType.REFRESH)
    now = utcnow()
    live_session = select(col(AuthSession.id)).where(
        col(AuthSession.id) == claims.session_id, col(AuthSession.revoked_at).is_(None)
    )
    spent = await session.exec(
        update(RefreshToken)
        .where(
            col(RefreshToken.jti) == claims.jti,
            col(RefreshToken.session_id) == claims.session_id,
            col(RefreshToken.used_at).is_(None),
            col(RefreshToken.expires_at) > now,
            col(RefreshToken.session_id).in_(live_session.scalar_subquery()),
        )
        .values(used_at=now)
        .returning(col(RefreshToken.session_id))
    )
    if spent.scalar_one_or_none() is None:
        await session.rollback()
        await _revoke_family_if_reused(session=session, claims=claims)
        raise NotAuthenticated()
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        await session.rollback()
        raise NotAuthenticated()
    pair = issue_pair(
        session=session,
        settings=settings,
        user_id=claims.user_id,
        auth_session_id=claims.session_id,
    )
    await session.commit()
    return pair


async def _revoke_family_if_reused(*, session: AsyncSession, claims: tokens.TokenClaims) -> None:
    row = await session.get(RefreshToken, claims.jti)
    if row is not None and row.used_at is not None:
        await revoke_sessions(session=session, where=col(AuthSession.id) == claims.session_id)
        await session.commit()


async def logout(*, session: AsyncSession, settings: Settings, refresh_token: str) -> None:
    """Revoke the session (the whole rotation family) the refresh token belongs to."""
    claims = _read(refresh_token, settings=settings, expected=tokens.TokenType.REFRESH)
    await revoke_sessions(
        session=session,
        where=and_(
            col(AuthSession.id) == claims.session_id, col(AuthSession.user_id) == claims.user_id
        ),
    )
    await session.commit()


async def logout_everywhere(*, session: AsyncSession, user_id: int) -> None:
    await revoke_all_sessions(session=session, user_id=user_id)
    await session.commit()


async def user_from_access_token(*, session: AsyncSession, settings: Settings, token: str) -> User:
    """The active user behind a valid access token whose session is still live."""
    claims = _read(token, settings=settings, expected=tokens.TokenType.ACCESS)
    user = (
        await session.exec(
            select(User)
            .join(AuthSession, col(AuthSession.user_id) == User.id)
            .where(
                col(User.id) == claims.user_id,
                col(User.is_active).is_(True),
                col(AuthSession.id) == claims.session_id,
                col(AuthSession.revoked_at).is_(None),
            )
        )
    ).one_or_none()
    if user is None:
        raise NotAuthenticated()
    return user
