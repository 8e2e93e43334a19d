"""The tables, importable as `app.models` (they are defined in models/models.py)."""

from app.models.models import (
    MAX_CLIENT_ADDRESS_LENGTH,
    MAX_PERMISSION_LENGTH,
    MAX_ROLE_NAME_LENGTH,
    MAX_USER_AGENT_LENGTH,
    AuthenticatedUser,
    AuthSession,
    Item,
    LoginFailure,
    MailOutbox,
    OneTimeToken,
    RefreshToken,
    Role,
    User,
    UserRole,
    utcnow,
)

__all__ = [
    "MAX_CLIENT_ADDRESS_LENGTH",
    "MAX_PERMISSION_LENGTH",
    "MAX_ROLE_NAME_LENGTH",
    "MAX_USER_AGENT_LENGTH",
    "AuthSession",
    "AuthenticatedUser",
    "Item",
    "LoginFailure",
    "MailOutbox",
    "OneTimeToken",
    "RefreshToken",
    "Role",
    "User",
    "UserRole",
    "utcnow",
]
