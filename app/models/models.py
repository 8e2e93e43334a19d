"""The tables. Timestamps are timezone-aware; money is NUMERIC, never float."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Index, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

MONEY = Numeric(12, 2)
# What a session records of its client: a User-Agent is cut to this length (its
# sender chooses it), an address is at most an IPv6 one (45) or "unknown".
MAX_USER_AGENT_LENGTH = 512
MAX_CLIENT_ADDRESS_LENGTH = 64


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(**column: Any) -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=Column(
            DateTime(timezone=True), nullable=False, server_default=func.now(), **column
        ),
    )


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    # Stored lower-cased: emails compare case-insensitively.
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))
    full_name: str | None = Field(default=None, max_length=200)
    hashed_password: str = Field(max_length=100)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    is_superuser: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Bumped by whatever ends every session (password change, logout-all,
    # deactivation): a login whose password check began under an older epoch
    # opens no session (see app/auth/service.py).
    session_epoch: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp(onupdate=func.now())


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """The caller, as the access-token check reads them: a row of `users`, no ORM
    object (reads need none; a write loads the `User` it changes)."""

    id: int
    email: str
    full_name: str | None
    hashed_password: str
    is_active: bool
    is_superuser: bool
    session_epoch: int
    created_at: datetime
    # The session the access token names (its `sid`).
    session_id: uuid.UUID


class AuthSession(SQLModel, table=True):
    """One login: the family of refresh tokens rotated from it.

    Access tokens carry its id (`sid`), so revoking the session ends them at once.
    """

    __tablename__ = "auth_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    created_at: datetime = _timestamp()
    # The login, or the last refresh: each refresh moves `expires_at` to its new
    # refresh token's expiry, so a session lives while it is used.
    last_used_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The client seen at login, and at the last refresh (the login's until then).
    # Null for sessions opened before these were recorded.
    user_agent: str | None = Field(default=None, max_length=MAX_USER_AGENT_LENGTH)
    client_address: str | None = Field(default=None, max_length=MAX_CLIENT_ADDRESS_LENGTH)
    last_user_agent: str | None = Field(default=None, max_length=MAX_USER_AGENT_LENGTH)
    last_client_address: str | None = Field(default=None, max_length=MAX_CLIENT_ADDRESS_LENGTH)


class RefreshToken(SQLModel, table=True):
    """A refresh token is stored by its `jti` only: the row cannot be replayed."""

    __tablename__ = "refresh_tokens"

    jti: uuid.UUID = Field(primary_key=True)
    session_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    issued_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The client address that spent it: a repeat from the same address within
    # the grace is a double submit, not a theft.
    used_by: str | None = Field(default=None, max_length=64)


class LoginFailure(SQLModel, table=True):
    """A login attempt counted by the throttle under one key (a hash): a failure,
    or an attempt still being checked (removed again when it succeeds)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "failed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64)
    failed_at: datetime = _timestamp()


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_tags", "tags", postgresql_using="gin"),
        Index("ix_items_owner_created", "owner_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(max_length=200)
    description: str | None = None
    price: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    tax: Decimal | None = Field(default=None, sa_column=Column(MONEY, nullable=True))
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(50)), nullable=False, server_default="{}"),
    )
    image: dict[str, str] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp(onupdate=func.now())
