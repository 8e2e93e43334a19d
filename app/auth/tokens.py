"""Encoding and decoding JWTs. The only module that imports jwt.

Tokens are signed with the settings' signing key and name it in their header
(`kid`). A token is verified with the key its `kid` names, by that key's own
algorithm (app/signing_keys.py): an unknown kid, or none, is refused, and the
header's `alg`, `jku`, `x5u` or `jwk` never choose a key or an algorithm.
"""

import base64
import enum
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from app.config import Settings
from app.signing_keys import KeyRing, VerificationKey

REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "type"]
SESSION_CLAIMS = [*REQUIRED_CLAIMS, "sid"]
# A device token names the account's session epoch when it was issued (`sep`):
# whatever ends every session (a password change or reset, logout-all, an admin)
# moves the epoch on, and the token no longer marks a known device.
DEVICE_CLAIMS = [*REQUIRED_CLAIMS, "sep"]


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
    # The account's session epoch the token was issued under.
    session_epoch: int


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
    signing = settings.keyring.signing
    return jwt.encode(
        payload, signing.key, algorithm=signing.algorithm, headers={"kid": signing.kid}
    )


def _header(token: str) -> dict[str, Any]:
    """The token's header, read only to choose a key: jwt.decode then checks the
    whole token. Not jwt.get_unverified_header, which decodes the payload and the
    signature too (a fifth of a bearer's verification time)."""
    try:
        segment = token.split(".", 1)[0].encode("ascii")
        header = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, RecursionError) as exc:  # binascii, JSON, non-ASCII errors
        raise InvalidToken("unreadable header") from exc
    if not isinstance(header, dict):
        raise InvalidToken("the header is not an object")
    return header


def _candidate_keys(token: str, keyring: KeyRing) -> tuple[VerificationKey, ...]:
    """The key the token's `kid` names; without a kid, the keys allowed to verify
    kid-less tokens (none unless JWT_REQUIRE_KID=false)."""
    header = _header(token)
    if "kid" not in header:
        if not keyring.without_kid:
            raise InvalidToken("the token names no key")
        return keyring.without_kid
    kid = header["kid"]
    key = keyring.by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("the token names an unknown key")
    return (key,)


def _decode(
    token: str, *, settings: Settings, expected_type: TokenType, required: list[str]
) -> dict[str, Any]:
    for key in _candidate_keys(token, settings.keyring):
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=settings.JWT_AUDIENCE,
                issuer=settings.JWT_ISSUER,
                options={"require": required},
            )
        except jwt.InvalidSignatureError:
            continue  # a kid-less token: maybe another of the keys signed it
        if payload["type"] != expected_type.value:
            raise InvalidToken(f"expected a {expected_type.value} token")
        return payload
    raise InvalidToken("no key verifies the signature")


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


def encode_device_token(
    *, settings: Settings, user_id: int, session_epoch: int, issued_at: datetime
) -> str:
    return _encode(
        settings=settings,
        token_type=TokenType.DEVICE,
        user_id=user_id,
        jti=uuid.uuid4(),
        issued_at=issued_at,
        lifetime=settings.DEVICE_TOKEN_TTL,
        sep=str(session_epoch),
    )


def decode_device_token(token: str, *, settings: Settings) -> DeviceClaims:
    try:
        payload = _decode(
            token, settings=settings, expected_type=TokenType.DEVICE, required=DEVICE_CLAIMS
        )
        return DeviceClaims(
            user_id=int(payload["sub"]),
            device_id=uuid.UUID(payload["jti"]),
            session_epoch=int(payload["sep"]),
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc
