"""Sessions: one per login, each the family of refresh tokens rotated from it.

Access tokens carry their session's id (`sid`), so revoking a session ends its
access tokens at once, not at their expiry.
"""

import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.sql import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import tokens
from app.config import Settings
from app.models import AuthSession, RefreshToken, User, utcnow
from app.schema.auth import TokenPair


def issue_pair(
    *, db: AsyncSession, settings: Settings, user_id: int, auth_session_id: uuid.UUID
) -> TokenPair:
    """Add a refresh token row to the session's family; the caller commits."""
    now = utcnow()
    refresh_jti = uuid.uuid4()
    db.add(
        RefreshToken(
            jti=refresh_jti,
            session_id=auth_session_id,
            issued_at=now,
            expires_at=now + settings.REFRESH_TOKEN_TTL,
        )
    )

    def encode(token_type: tokens.TokenType, jti: uuid.UUID, lifetime: timedelta) -> str:
        return tokens.encode_token(
            settings=settings,
            token_type=token_type,
            user_id=user_id,
            session_id=auth_session_id,
            jti=jti,
            issued_at=now,
            lifetime=lifetime,
        )

    return TokenPair(
        access_token=encode(tokens.TokenType.ACCESS, uuid.uuid4(), settings.ACCESS_TOKEN_TTL),
        refresh_token=encode(tokens.TokenType.REFRESH, refresh_jti, settings.REFRESH_TOKEN_TTL),
        expires_in=int(settings.ACCESS_TOKEN_TTL.total_seconds()),
    )


async def open_auth_session(*, db: AsyncSession, settings: Settings, user_id: int) -> TokenPair:
    """Start a new session (a new refresh family) for the user; the caller commits."""
    auth_session = AuthSession(user_id=user_id, expires_at=utcnow() + settings.REFRESH_TOKEN_TTL)
    db.add(auth_session)
    await db.flush()
    return issue_pair(db=db, settings=settings, user_id=user_id, auth_session_id=auth_session.id)


async def revoke_sessions(*, db: AsyncSession, where: ColumnElement[bool]) -> None:
    await db.exec(
        update(AuthSession)
        .where(where, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


async def end_all_sessions(*, db: AsyncSession, user_id: int) -> None:
    """End every session of the user, access tokens included, and any login still
    checking a password (it sees a new epoch); the caller commits.

    The epoch is bumped first: that UPDATE waits for a login holding the user row
    FOR SHARE to commit, so the revocation below then sees the session it opened.
    """
    await db.exec(
        update(User).where(col(User.id) == user_id).values(session_epoch=User.session_epoch + 1)
    )
    await revoke_sessions(db=db, where=col(AuthSession.user_id) == user_id)
