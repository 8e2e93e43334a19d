"""Encoding and decoding JWTs. The only module that imports jwt."""

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from app.config import Settings

# Pinned: a token whose header names any other algorithm (or `none`) is refused.
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "type"]
SESSION_CLAIMS = [*REQUIRED_CLAIMS, "sid"]


class TokenType(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    # Marks a client that logged in before (the login throttle's device cookie).
    DEVICE = "device"


class InvalidToken(Exception):
    """Bad signature, algorithm, claims, type, or expired."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_id: uuid.UUID
    jti: uuid.UUID


@dataclass(frozen=True, slots=True)
class DeviceClaims:
    user_id: int
    device_id: uuid.UUID


def _encode(
    *,
    settings: Settings,
    token_type: TokenType,
    user_id: int,
    jti: uuid.UUID,
    issued_at: datetime,
    lifetime: timedelta,
    **extra: str,
) -> str:
    payload = {
        "sub": str(user_id),
        "jti": str(jti),
        "type": token_type.value,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        **extra,
    }
    return jwt.encode(payload, settings.SECRET_KEY.get_secret_value(), algorithm=ALGORITHM)


def _decode(
    token: str, *, settings: Settings, expected_type: TokenType, required: list[str]
) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(
        token,
        settings.SECRET_KEY.get_secret_value(),
        algorithms=[ALGORITHM],
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        options={"require": required},
    )
    if payload["type"] != expected_type.value:
        raise InvalidToken(f"expected a {expected_type.value} token")
    return payload


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
    return _encode(
        settings=settings,
        token_type=token_type,
        user_id=user_id,
        jti=jti,
        issued_at=issued_at,
        lifetime=lifetime,
        sid=str(session_id),
    )


def decode_token(token: str, *, settings: Settings, expected_type: TokenType) -> TokenClaims:
    try:
        payload = _decode(
            token, settings=settings, expected_type=expected_type, required=SESSION_CLAIMS
        )
        return TokenClaims(
            user_id=int(payload["sub"]),
            session_id=uuid.UUID(payload["sid"]),
            jti=uuid.UUID(payload["jti"]),
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc


def encode_device_token(*, settings: Settings, user_id: int, issued_at: datetime) -> str:
    return _encode(
        settings=settings,
        token_type=TokenType.DEVICE,
        user_id=user_id,
        jti=uuid.uuid4(),
        issued_at=issued_at,
        lifetime=settings.DEVICE_TOKEN_TTL,
    )


def decode_device_token(token: str, *, settings: Settings) -> DeviceClaims:
    try:
        payload = _decode(
            token, settings=settings, expected_type=TokenType.DEVICE, required=REQUIRED_CLAIMS
        )
        return DeviceClaims(user_id=int(payload["sub"]), device_id=uuid.UUID(payload["jti"]))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc
