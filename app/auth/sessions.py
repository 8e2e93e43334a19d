"""Sessions: one per login, each the family of refresh tokens rotated from it.

Access tokens carry their session's id (`sid`), so revoking a session ends its
access tokens at once, not at their expiry. A session records the client seen at
login and at its last refresh, for its owner's list of sessions.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from sqlalchemy import bindparam, false, func, update
from sqlalchemy import select as select_columns  # any number of columns
from sqlalchemy.sql import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import tokens
from app.config import Settings
from app.database.reads import ReadPool, driver_sql
from app.models import (
    MAX_CLIENT_ADDRESS_LENGTH,
    MAX_USER_AGENT_LENGTH,
    AuthSession,
    RefreshToken,
    User,
    utcnow,
)
from app.schema.auth import SessionOut, TokenPair


@dataclass(frozen=True, slots=True)
class Client:
    """The other end of a login or a refresh, as its session records it."""

    address: str
    user_agent: str | None

    @classmethod
    def seen(cls, *, address: str, user_agent: str | None) -> Self:
        """Bounded and storable whatever the client sent: the User-Agent (its own
        choice) cut to the column's length, without NUL (Postgres text cannot hold
        it); an empty one is none."""
        agent = (user_agent or "").replace("\x00", "")[:MAX_USER_AGENT_LENGTH]
        return cls(address=address[:MAX_CLIENT_ADDRESS_LENGTH], user_agent=agent or None)


def issue_pair(
    *,
    db: AsyncSession,
    settings: Settings,
    user_id: int,
    auth_session_id: uuid.UUID,
    now: datetime,
) -> TokenPair:
    """Add a refresh token row to the session's family; the caller commits. It
    expires at `now` + REFRESH_TOKEN_TTL, as the session then does."""
    refresh_jti = uuid.uuid4()
    db.add(
        RefreshToken(
            jti=refresh_jti,
            session_id=auth_session_id,
            issued_at=now,
            expires_at=now + tokens.RefreshToken.lifetime(settings),
        )
    )
    return TokenPair(
        access_token=tokens.AccessToken(
            user_id=user_id, session_id=auth_session_id, jti=uuid.uuid4()
        ).encode(settings=settings, issued_at=now),
        refresh_token=tokens.RefreshToken(
            user_id=user_id, session_id=auth_session_id, jti=refresh_jti
        ).encode(settings=settings, issued_at=now),
        expires_in=int(tokens.AccessToken.lifetime(settings).total_seconds()),
    )


@dataclass(frozen=True, slots=True)
class OpenedSession:
    id: uuid.UUID
    pair: TokenPair


async def open_auth_session(
    *, db: AsyncSession, settings: Settings, user_id: int, client: Client
) -> OpenedSession:
    """Start a new session (a new refresh family) for the user, and its first
    token pair; the caller commits."""
    now = utcnow()
    auth_session = AuthSession(
        user_id=user_id,
        created_at=now,
        last_used_at=now,
        expires_at=now + settings.REFRESH_TOKEN_TTL,
        user_agent=client.user_agent,
        client_address=client.address,
        last_user_agent=client.user_agent,
        last_client_address=client.address,
    )
    db.add(auth_session)
    await db.flush()
    pair = issue_pair(
        db=db, settings=settings, user_id=user_id, auth_session_id=auth_session.id, now=now
    )
    return OpenedSession(id=auth_session.id, pair=pair)


async def revoke_sessions(*, db: AsyncSession, where: ColumnElement[bool]) -> int:
    """Revoke the live sessions `where` selects; how many. The caller commits."""
    result = await db.exec(
        update(AuthSession)
        .where(where, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


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


async def end_session(*, db: AsyncSession, user_id: int, session_id: uuid.UUID) -> bool:
    """End one live session of the user, access tokens included; False when the
    user has no such live session. The caller commits."""
    now = utcnow()
    ended = await db.exec(
        update(AuthSession)
        .where(
            col(AuthSession.id) == session_id,
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > now,
        )
        .values(revoked_at=now)
        .returning(col(AuthSession.id))
    )
    return ended.scalar_one_or_none() is not None


# A user's live sessions, newest first; `current` marks the one the caller's
# access token names.
_LIVE_SESSIONS_SQL = driver_sql(
    select_columns(
        col(AuthSession.id),
        col(AuthSession.created_at),
        col(AuthSession.last_used_at),
        col(AuthSession.expires_at),
        col(AuthSession.user_agent),
        col(AuthSession.client_address),
        col(AuthSession.last_user_agent),
        col(AuthSession.last_client_address),
        # Null for a caller without a session (an API key): current nowhere.
        func.coalesce(col(AuthSession.id) == bindparam("current_session_id"), false()).label(
            "current"
        ),
    )
    .where(
        col(AuthSession.user_id) == bindparam("user_id"),
        col(AuthSession.revoked_at).is_(None),
        col(AuthSession.expires_at) > bindparam("now"),
    )
    .order_by(col(AuthSession.created_at).desc(), col(AuthSession.id).desc())
)


async def live_sessions(
    *, reader: ReadPool, user_id: int, current_session_id: uuid.UUID | None
) -> list[SessionOut]:
    rows = await reader.fetch_all(
        _LIVE_SESSIONS_SQL,
        {"user_id": user_id, "current_session_id": current_session_id, "now": utcnow()},
    )
    return [SessionOut.model_validate(row) for row in rows]
