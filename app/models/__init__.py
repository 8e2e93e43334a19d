"""The tables, importable as `app.models` (they are defined in models/models.py)."""

from app.models.models import (
    MAX_CLIENT_ADDRESS_LENGTH,
    MAX_USER_AGENT_LENGTH,
    AuthenticatedUser,
    AuthSession,
    Item,
    LoginFailure,
    MailOutbox,
    OneTimeToken,
    RefreshToken,
    User,
    utcnow,
)

__all__ = [
    "MAX_CLIENT_ADDRESS_LENGTH",
    "MAX_USER_AGENT_LENGTH",
    "AuthSession",
    "AuthenticatedUser",
    "Item",
    "LoginFailure",
    "MailOutbox",
    "OneTimeToken",
    "RefreshToken",
    "User",
    "utcnow",
]
