"""The tables. Timestamps are timezone-aware; money is NUMERIC, never float."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Table,
    func,
    text,
)
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
    # The address in `email` was proven by a link mailed to it; an email change
    # unproves it again.
    is_verified: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
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
    is_verified: bool
    created_at: datetime
    # The session the access token names (its `sid`); None for an API key.
    session_id: uuid.UUID | None
    # Every permission the user's roles hold (the built-in admin role's aside:
    # `is_superuser`), read in the same statement: names, unchecked, repeats kept.
    role_permissions: tuple[str, ...] = ()
    # The API key that authenticated the request, and its scopes; None for a session.
    api_key_id: uuid.UUID | None = None
    key_scopes: tuple[str, ...] | None = None


# What a role's name and a permission's name may be: lower case, short.
MAX_ROLE_NAME_LENGTH = 50
MAX_PERMISSION_LENGTH = 64


class Role(SQLModel, table=True):
    """A named set of permissions (`resource.action`), granted to users through
    `user_roles`. The built-in admin role is not a row: it holds every
    permission, and who holds it is `users.is_superuser` (app/policy.py)."""

    __tablename__ = "roles"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(MAX_ROLE_NAME_LENGTH), nullable=False, unique=True))
    description: str = Field(default="", max_length=500, sa_column_kwargs={"server_default": ""})
    permissions: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(MAX_PERMISSION_LENGTH)), nullable=False, server_default="{}"),
    )
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp(onupdate=func.now())


class UserRole(SQLModel, table=True):
    """A role granted to a user; it goes with either."""

    __tablename__ = "user_roles"
    __table_args__ = (Index("ix_user_roles_role_id", "role_id"),)

    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    role_id: int = Field(
        sa_column=Column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    )


MAX_API_KEY_NAME_LENGTH = 100


class ApiKey(SQLModel, table=True):
    """A personal access token: acts for its user within its scopes (app/auth/api_keys.py).
    Stored as the SHA-256 of the key only; revoking one deletes its row."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(max_length=MAX_API_KEY_NAME_LENGTH)
    # The key's first characters, to tell keys apart in a list.
    prefix: str = Field(max_length=16)
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    scopes: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(MAX_PERMISSION_LENGTH)), nullable=False, server_default="{}"),
    )
    created_at: datetime = _timestamp()
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Written at most once a minute per key (app/auth/service.py).
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class AuthSession(SQLModel, table=True):
    """One login: the family of refresh tokens rotated from it.

    Access tokens carry its id (`sid`), so revoking the session ends them at once.
    """

    __tablename__ = "auth_sessions"
    # The sweep's: sessions expired, or revoked, long enough ago.
    __table_args__ = (
        Index("ix_auth_sessions_expires_at", "expires_at"),
        Index(
            "ix_auth_sessions_revoked_at",
            "revoked_at",
            postgresql_where=text("revoked_at IS NOT NULL"),
        ),
    )

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
    __table_args__ = (Index("ix_refresh_tokens_expires_at", "expires_at"),)  # the sweep's

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
    __table_args__ = (
        Index("ix_login_failures_key_at", "key", "failed_at"),
        Index("ix_login_failures_failed_at", "failed_at"),  # the sweep's
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64)
    failed_at: datetime = _timestamp()


class OneTimeToken(SQLModel, table=True):
    """A single-use token mailed to a user (password reset, email verification).
    Stored as the SHA-256 of the token only: a leaked table resets nothing."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (
        Index("ix_one_time_tokens_user_purpose", "user_id", "purpose"),
        Index("ix_one_time_tokens_expires_at", "expires_at"),  # the sweep's
    )

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    # 'reset' or 'verify': a token only ever does what it was issued for.
    purpose: str = Field(max_length=16)
    # The address it was mailed to: worthless once the account's email changes.
    email: str = Field(sa_column=Column(String(320), nullable=False))
    created_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # A newer token of the same purpose (or a password change) replaced it.
    voided_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class TotpCredential(SQLModel, table=True):
    """A user's TOTP authenticator (RFC 6238), one at most: pending until a code
    from it is confirmed, then a second factor every password login asks for.
    The secret is encrypted (app/encryption_keys.py): the server needs it back to
    compute codes, so it cannot be hashed."""

    __tablename__ = "totp_credentials"

    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    # A Fernet token of the base32 secret, under the first TOTP_ENCRYPTION_KEYS key
    # at the time it was written.
    encrypted_secret: str = Field(sa_column=Column(String(500), nullable=False))
    # Null while pending: shown to the user, no code from it confirmed yet.
    confirmed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The time step (Unix time // 30) of the last code accepted: only a later step
    # is accepted again, so a code works once (no replay within its window).
    last_used_step: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    created_at: datetime = _timestamp()


class RecoveryCode(SQLModel, table=True):
    """A single-use code that stands in for the authenticator (a lost phone).
    Stored as the SHA-256 of the code only (app/auth/recovery_codes.py)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_hash", "user_id", "code_hash", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    code_hash: str = Field(sa_column=Column(String(64), nullable=False))
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class LoginChallenge(SQLModel, table=True):
    """A password login that still owes its second factor: the single-use token
    the second step presents, stored as its SHA-256 only (app/auth/login_challenges.py).
    It dies when used, when it expires, after MAX_GUESSES codes, or when the
    account's session epoch moves (a password change or reset, logout-all,
    deactivation)."""

    __tablename__ = "login_challenges"
    __table_args__ = (
        Index("ix_login_challenges_user_id", "user_id"),
        Index("ix_login_challenges_expires_at", "expires_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    # The account's session epoch when the password was proven.
    session_epoch: int
    created_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # Codes presented so far, counted before each is checked.
    guesses: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class MailOutbox(SQLModel, table=True):
    """A mail to send. Requests only add rows; the sender (app/mail/outbox.py)
    delivers them with retries, so SMTP never slows or fails a request and a mail
    survives a restart. A row with `compose` set and no body yet is composed by the
    sender (the account looked up, a token issued): a request for an unknown
    address then does exactly the work of one for a known address."""

    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index(
            "ix_mail_outbox_due",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND next_attempt_at IS NOT NULL"),
        ),
        # The sweep's: mails done with (sent or given up), by age.
        Index(
            "ix_mail_outbox_done_created_at",
            "created_at",
            postgresql_where=text("next_attempt_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(sa_column=Column(String(320), nullable=False))
    # What the sender composes before the first attempt: 'reset' or 'verify'.
    compose: str | None = Field(default=None, max_length=16)
    subject: str | None = Field(default=None, max_length=300)
    text_body: str | None = None
    html_body: str | None = None
    created_at: datetime = _timestamp()
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # When it may be tried next; null once there is nothing more to do.
    next_attempt_at: datetime | None = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=True, server_default=func.now()),
    )
    last_error: str | None = Field(default=None, max_length=1000)
    sent_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


MAX_EVENT_TYPE_LENGTH = 40


class AuditEvent(SQLModel, table=True):
    """A security event, written in the transaction of what it records
    (app/services/audit.py). The ids are plain integers, no foreign keys: the
    record outlives the accounts it names, a deleted one included. Never a
    password, token or key in `details`."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_actor", "actor_id", "id"),
        Index("ix_audit_events_target", "target_id", "id"),
        Index("ix_audit_events_type", "type", "id"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
    )

    # Ordered as written: the cursor of the lists, newest first.
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    occurred_at: datetime = _timestamp()
    type: str = Field(max_length=MAX_EVENT_TYPE_LENGTH)
    # Who did it (None: nobody signed in, e.g. a failed login or a mailed link).
    actor_id: int | None = Field(default=None)
    # Whose account it concerns (None: no account, e.g. a login to an unknown one).
    target_id: int | None = Field(default=None)
    client_address: str | None = Field(default=None, max_length=MAX_CLIENT_ADDRESS_LENGTH)
    user_agent: str | None = Field(default=None, max_length=MAX_USER_AGENT_LENGTH)
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )


class OidcIdentity(SQLModel, table=True):
    """An account at an OpenID provider linked to a user: signing in there with
    it (the provider's `sub`, unique per issuer) signs this user in here."""

    __tablename__ = "oidc_identities"
    __table_args__ = (
        Index("ix_oidc_identities_provider_subject", "provider", "subject", unique=True),
        Index("ix_oidc_identities_user_id", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    # The provider's name in OIDC_PROVIDERS.
    provider: str = Field(sa_column=Column(String(32), nullable=False))
    # The ID token's `sub`: at most 255 ASCII characters (OpenID Connect Core §2).
    subject: str = Field(sa_column=Column(String(255), nullable=False))
    # The verified address the provider asserted when the link was made.
    email: str = Field(sa_column=Column(String(320), nullable=False))
    created_at: datetime = _timestamp()


MAX_PASSKEY_NAME_LENGTH = 100
# What a credential id may be: WebAuthn allows up to 1023 bytes.
MAX_CREDENTIAL_ID_BYTES = 1023


class WebauthnUserHandle(SQLModel, table=True):
    """The user's WebAuthn user handle: random bytes an authenticator stores with
    each of the user's passkeys and gives back at sign-in (never the user's id or
    address: a passkey tells no one who it is for). Made at the first passkey
    registration, kept for the account's life."""

    __tablename__ = "webauthn_user_handles"

    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    handle: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False, unique=True))
    created_at: datetime = _timestamp()


class Passkey(SQLModel, table=True):
    """A WebAuthn credential registered to a user: signing in with it (an
    assertion its public key verifies) signs the user in (app/auth/passkeys.py)."""

    __tablename__ = "passkeys"
    __table_args__ = (Index("ix_passkeys_user_id", "user_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: int = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    # The authenticator's id for it, unique across authenticators (and accounts).
    credential_id: bytes = Field(
        sa_column=Column(LargeBinary(MAX_CREDENTIAL_ID_BYTES), nullable=False, unique=True)
    )
    # The COSE public key, as the authenticator gave it.
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The authenticator's signature counter at the last sign-in (0: it keeps none).
    sign_count: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    # How the browser may reach it (usb, nfc, ble, internal, hybrid), as it said.
    transports: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(32)), nullable=False, server_default="{}"),
    )
    # Synced (a multi-device passkey backed up by its provider) when last seen.
    backed_up: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    name: str = Field(max_length=MAX_PASSKEY_NAME_LENGTH)
    created_at: datetime = _timestamp()
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class PasskeyCeremony(SQLModel, table=True):
    """A passkey registration or sign-in under way: the challenge its options
    gave the browser, found by the SHA-256 of the opaque ceremony id the client
    holds, for one purpose (and, to register, one user). Taken once, by a
    conditional DELETE (app/auth/passkey_ceremonies.py)."""

    __tablename__ = "passkey_ceremonies"
    __table_args__ = (Index("ix_passkey_ceremonies_expires_at", "expires_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    # 'register' or 'login'.
    purpose: str = Field(sa_column=Column(String(16), nullable=False))
    # Whose registration it is; null for a sign-in (it names no account).
    user_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    )
    challenge: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False))
    created_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# The columns a list of items may be sorted by, and those `q` searches.
ITEM_SORT_FIELDS = ("name", "price", "created_at")
ITEM_SEARCHED_FIELDS = ("name", "description")


def _item_sort_keys(*, nullable: bool) -> list[Column[Any]]:
    """Item's sort columns, typed as in `items`: they compare (and collate) alike."""
    return [
        Column("name", String(200), nullable=nullable),
        Column("price", MONEY, nullable=nullable),
        Column("created_at", DateTime(timezone=True), nullable=nullable),
    ]


# The list of all items at a deep offset (app/services/item_ranks.py): every
# `spacing`-th item of each sort, as of one snapshot of `rows` items (one build at
# a time: the singleton row) …
item_rank_builds = Table(
    "item_rank_builds",
    SQLModel.metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("rows", BigInteger, nullable=False),
    Column("spacing", Integer, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("singleton", name="ck_item_rank_builds_singleton"),
)
# … each anchor holding its own sort's key only …
item_rank_anchors = Table(
    "item_rank_anchors",
    SQLModel.metadata,
    Column("field", String(20), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("id", Integer, nullable=False),
    *_item_sort_keys(nullable=True),
    CheckConstraint(
        " AND ".join(f"((field = '{name}') = ({name} IS NOT NULL))" for name in ITEM_SORT_FIELDS),
        name="ck_item_rank_anchors_key",
    ),
)
# … and every change of items since (triggers on items, migration 0012): +1 for a
# key that came, -1 for one that went. No key, no index: appended, read whole.
# The sort columns are NOT NULL in items, so (key, id) orders every row; so are
# they here: should one become nullable, writes would fail, not miscount.
item_rank_changes = Table(
    "item_rank_changes",
    SQLModel.metadata,
    Column("id", Integer, nullable=False),
    *_item_sort_keys(nullable=False),
    Column("delta", SmallInteger, nullable=False),
)


class Item(SQLModel, table=True):
    __tablename__ = "items"
    # A list reads its first page (and every page after a cursor) from the index
    # of its sort, the id breaking ties: an owner's, or everyone's for an admin.
    # `q` is served by the trigram indexes (pg_trgm), `tag` by the GIN on tags.
    __table_args__ = (
        Index("ix_items_tags", "tags", postgresql_using="gin"),
        *(Index(f"ix_items_owner_{field}", "owner_id", field, "id") for field in ITEM_SORT_FIELDS),
        *(Index(f"ix_items_{field}", field, "id") for field in ITEM_SORT_FIELDS),
        *(
            Index(
                f"ix_items_{field}_trgm",
                field,
                postgresql_using="gin",
                postgresql_ops={field: "gin_trgm_ops"},
            )
            for field in ITEM_SEARCHED_FIELDS
        ),
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
