"""Encoding and decoding JWTs. The only module that imports jwt."""

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from app.config import Settings

# Pinned: a token whose header names any other algorithm (or `none`) is refused.
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "type", "sid"]


class TokenType(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class InvalidToken(Exception):
    """Bad signature, algorithm, claims, type, or expired."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_id: uuid.UUID
    jti: uuid.UUID


def encode_token(
    *,
    settings: Settings,
    token_type: TokenType,
    user_id: int,
    session_id: uuid.UUID,
    jti: uuid.UUID,
    issued_at: datetime,
    lifetime: timedelta,
) -> str:
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": str(jti),
        "type": token_type.value,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    return jwt.encode(payload, settings.SECRET_KEY.get_secret_value(), algorithm=ALGORITHM)


def decode_token(token: str, *, settings: Settings, expected_type: TokenType) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            settings.SECRET_KEY.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            options={"require": REQUIRED_CLAIMS},
        )
        if payload["type"] != expected_type.value:
            raise InvalidToken(f"expected a {expected_type.value} token")
        return TokenClaims(
            user_id=int(payload["sub"]),
            session_id=uuid.UUID(payload["sid"]),
            jti=uuid.UUID(payload["jti"]),
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc
