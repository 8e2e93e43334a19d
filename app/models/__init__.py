"""The tables, importable as `app.models` (they are defined in models/models.py)."""

from app.models.models import (
    AuthenticatedUser,
    AuthSession,
    Item,
    LoginFailure,
    RefreshToken,
    User,
    utcnow,
)

__all__ = [
    "AuthSession",
    "AuthenticatedUser",
    "Item",
    "LoginFailure",
    "RefreshToken",
    "User",
    "utcnow",
]
