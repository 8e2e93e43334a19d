"""Encoding and decoding JWTs, one class per token type (its claims and its
lifetime). The only module that imports jwt.

Tokens are signed with the settings' signing key and name it in their header
(`kid`). A token is verified with the key its `kid` names, by that key's own
algorithm (app/signing_keys.py): an unknown kid, or none, is refused, and the
header's `alg`, `jku`, `x5u` or `jwk` never choose a key or an algorithm.
"""

import base64
import enum
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import jwt

from app.config import Settings
from app.exceptions import NotAuthenticated
from app.signing_keys import KeyRing, VerificationKey

REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "type"]


class TokenType(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    # Marks a client that logged in before (the login throttle's device cookie).
    DEVICE = "device"
    # A sign-in with an OpenID provider under way (the browser's flow cookie).
    OIDC_FLOW = "oidc_flow"


class InvalidToken(Exception):
    """Bad signature, algorithm, claims, type, or expired."""


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


class Token:
    """A token type: its claims beyond the registered ones, and its lifetime.
    `encode` signs one; `decode` verifies one of this type (anything else,
    expired or forged is InvalidToken) and `presented` is `decode` for a token a
    client presents to authenticate (anything wrong is NotAuthenticated)."""

    __slots__ = ()
    TYPE: ClassVar[TokenType]
    # Claims this type adds to REQUIRED_CLAIMS, all required too.
    CLAIMS: ClassVar[tuple[str, ...]]

    @classmethod
    def lifetime(cls, settings: Settings) -> timedelta:
        raise NotImplementedError

    def _subject(self) -> tuple[int, uuid.UUID, dict[str, str]]:
        """The user, the `jti` and this type's own claims, as encoded."""
        raise NotImplementedError

    @classmethod
    def _from_claims(cls, user_id: int, jti: uuid.UUID, payload: dict[str, Any]) -> Self:
        """The token from its verified payload: `sub`, `jti` and this type's claims."""
        raise NotImplementedError

    def encode(
        self, *, settings: Settings, issued_at: datetime, lifetime: timedelta | None = None
    ) -> str:
        user_id, jti, claims = self._subject()
        return _encode(
            settings=settings,
            token_type=self.TYPE,
            user_id=user_id,
            jti=jti,
            issued_at=issued_at,
            lifetime=self.lifetime(settings) if lifetime is None else lifetime,
            **claims,
        )

    @classmethod
    def decode(cls, token: str, *, settings: Settings) -> Self:
        try:
            payload = _decode(
                token,
                settings=settings,
                expected_type=cls.TYPE,
                required=[*REQUIRED_CLAIMS, *cls.CLAIMS],
            )
            return cls._from_claims(int(payload["sub"]), uuid.UUID(payload["jti"]), payload)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc

    @classmethod
    def presented(cls, token: str, *, settings: Settings) -> Self:
        try:
            return cls.decode(token, settings=settings)
        except InvalidToken as exc:
            raise NotAuthenticated() from exc


@dataclass(frozen=True, slots=True)
class SessionToken(Token):
    """A token of a session (`sid`): revoking the session ends it."""

    CLAIMS: ClassVar[tuple[str, ...]] = ("sid",)
    user_id: int
    session_id: uuid.UUID
    jti: uuid.UUID

    def _subject(self) -> tuple[int, uuid.UUID, dict[str, str]]:
        return self.user_id, self.jti, {"sid": str(self.session_id)}

    @classmethod
    def _from_claims(cls, user_id: int, jti: uuid.UUID, payload: dict[str, Any]) -> Self:
        return cls(user_id=user_id, session_id=uuid.UUID(payload["sid"]), jti=jti)


class AccessToken(SessionToken):
    """Sent with every request; lives ACCESS_TOKEN_TTL."""

    __slots__ = ()
    TYPE = TokenType.ACCESS

    @classmethod
    def lifetime(cls, settings: Settings) -> timedelta:
        return settings.ACCESS_TOKEN_TTL


class RefreshToken(SessionToken):
    """Spent once for a new pair; its `jti` is a row of its session's family.
    Lives REFRESH_TOKEN_TTL."""

    __slots__ = ()
    TYPE = TokenType.REFRESH

    @classmethod
    def lifetime(cls, settings: Settings) -> timedelta:
        return settings.REFRESH_TOKEN_TTL


@dataclass(frozen=True, slots=True)
class DeviceToken(Token):
    """The login throttle's device cookie: a client that logged in to this
    account before. It names the account's session epoch when it was issued
    (`sep`): whatever ends every session (a password change or reset,
    logout-all, an admin) moves the epoch on, and the token no longer marks a
    known device. Lives DEVICE_TOKEN_TTL."""

    TYPE: ClassVar[TokenType] = TokenType.DEVICE
    CLAIMS: ClassVar[tuple[str, ...]] = ("sep",)
    user_id: int
    device_id: uuid.UUID
    # The account's session epoch the token was issued under.
    session_epoch: int

    @classmethod
    def new(cls, *, user_id: int, session_epoch: int) -> Self:
        return cls(user_id=user_id, device_id=uuid.uuid4(), session_epoch=session_epoch)

    @classmethod
    def lifetime(cls, settings: Settings) -> timedelta:
        return settings.DEVICE_TOKEN_TTL

    def _subject(self) -> tuple[int, uuid.UUID, dict[str, str]]:
        return self.user_id, self.device_id, {"sep": str(self.session_epoch)}

    @classmethod
    def _from_claims(cls, user_id: int, jti: uuid.UUID, payload: dict[str, Any]) -> Self:
        return cls(user_id=user_id, device_id=jti, session_epoch=int(payload["sep"]))


SESSION_TOKENS: dict[TokenType, type[SessionToken]] = {
    TokenType.ACCESS: AccessToken,
    TokenType.REFRESH: RefreshToken,
}


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
    """A session token of the given type with any lifetime (for tests and the
    benchmark's data: the app encodes through the classes)."""
    token = SESSION_TOKENS[token_type](user_id=user_id, session_id=session_id, jti=jti)
    return token.encode(settings=settings, issued_at=issued_at, lifetime=lifetime)


@dataclass(frozen=True, slots=True)
class OidcFlow:
    """A sign-in with an OpenID provider under way, as the browser that started it
    carries it in its flow cookie (signed like every token, so it cannot be
    forged or altered): the provider, the `state` and `nonce` sent to it, the
    PKCE verifier, and where to go once signed in. Only the browser holding it
    can finish the flow: a callback's `state` must equal the cookie's. Lives
    OIDC_FLOW_TTL."""

    CLAIMS: ClassVar[tuple[str, ...]] = ("state", "nonce", "verifier", "redirect_to")
    provider: str
    state: str
    nonce: str
    verifier: str
    redirect_to: str

    def encode(self, *, settings: Settings, issued_at: datetime) -> str:
        signing = settings.keyring.signing
        payload = {
            "sub": self.provider,
            "jti": str(uuid.uuid4()),
            "type": TokenType.OIDC_FLOW.value,
            "iss": settings.JWT_ISSUER,
            "aud": settings.JWT_AUDIENCE,
            "iat": issued_at,
            "exp": issued_at + settings.OIDC_FLOW_TTL,
            "state": self.state,
            "nonce": self.nonce,
            "verifier": self.verifier,
            "redirect_to": self.redirect_to,
        }
        return jwt.encode(
            payload, signing.key, algorithm=signing.algorithm, headers={"kid": signing.kid}
        )

    @classmethod
    def decode(cls, token: str, *, settings: Settings) -> Self:
        try:
            payload = _decode(
                token,
                settings=settings,
                expected_type=TokenType.OIDC_FLOW,
                required=[*REQUIRED_CLAIMS, *cls.CLAIMS],
            )
            values = {name: payload[name] for name in cls.CLAIMS}
            if not all(isinstance(value, str) for value in values.values()):
                raise InvalidToken("malformed flow")
            return cls(provider=str(payload["sub"]), **values)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc


# What an OpenID provider may sign an ID token with: public-key algorithms only
# (never `none`, never an HMAC keyed with a public value).
ID_TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
ID_TOKEN_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nonce"]
# Clock skew tolerated between this server and the provider.
ID_TOKEN_LEEWAY = timedelta(seconds=60)


def provider_keys(jwks: dict[str, Any], *, kid: object, algorithm: str) -> list[Any]:
    """The keys of a provider's JWKS that may have signed a token with this
    header's `kid` (any, without one) and `alg` (a key that names another is
    not tried), as key objects; keys this library cannot read are skipped."""
    entries = jwks.get("keys")
    found: list[Any] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if (kid is not None and entry.get("kid") != kid) or entry.get(
            "alg", algorithm
        ) != algorithm:
            continue
        try:
            found.append(jwt.PyJWK(entry, algorithm=algorithm).key)
        except jwt.PyJWTError:
            continue
    return found


def id_token_kid(token: str) -> object:
    """The `kid` an ID token's header names (None without one): which of its
    provider's keys to try, and whether its JWKS needs reading again."""
    return _header(token).get("kid")


def verify_id_token(
    token: str, *, jwks: dict[str, Any], issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    """The claims of an ID token (OpenID Connect Core §3.1.3.7), or InvalidToken:
    signed by a key of the provider's JWKS with a public-key algorithm, issued by
    `issuer` for `client_id` (and, among several audiences, authorised for it:
    `azp`), unexpired, and carrying the `nonce` this browser's flow sent."""
    header = _header(token)
    algorithm = header.get("alg")
    if algorithm not in ID_TOKEN_ALGORITHMS:
        raise InvalidToken("the ID token's algorithm is not accepted")
    for key in provider_keys(jwks, kid=header.get("kid"), algorithm=algorithm):
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=client_id,
                issuer=issuer,
                leeway=ID_TOKEN_LEEWAY,
                options={"require": ID_TOKEN_CLAIMS},
            )
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise InvalidToken("the ID token is not authorised for this client (azp)")
        if not isinstance(claims["nonce"], str) or not hmac.compare_digest(
            claims["nonce"].encode(), nonce.encode()
        ):
            raise InvalidToken("the ID token's nonce is not this flow's")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise InvalidToken("the ID token names no subject")
        return claims
    raise InvalidToken("no key of the provider verifies the ID token")
