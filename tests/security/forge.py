"""Forging JWTs: every way a token can be wrong, derived from a genuine one.

Shared by tests/auth/test_tokens.py and the token-forgery attack suite.
"""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from tests.conftest import TEST_SECRET_KEY

ANOTHER_KEY = "another-secret-key-that-is-long-enough-" * 2


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data, default=str).encode())


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def forge(
    claims: dict[str, Any],
    *,
    key: str = TEST_SECRET_KEY,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def unsigned(claims: dict[str, Any], *, alg: str = "none") -> str:
    """A token with an empty signature, its header naming `alg`."""
    return f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(claims)}."


def hmac_signed(claims: dict[str, Any], header: dict[str, Any], key: str = TEST_SECRET_KEY) -> str:
    """HMAC-SHA256 over any header at all, as a library confused by the header's
    `alg` (RS256 verified with the HMAC secret as the "public key") would accept."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper(token: str) -> str:
    """Change `sub` and keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "999"
    return f"{header}.{b64url_json(claims)}.{signature}"


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


def signature_forgeries(genuine: str) -> dict[str, str]:
    """What anyone can make without the key: a bad signature or algorithm."""
    good = claims_of(genuine)
    return {
        "tampered payload": tamper(genuine),
        "signature stripped": genuine.rsplit(".", 1)[0] + ".",
        "alg none": unsigned(good),
        "alg None": unsigned(good, alg="None"),
        "alg NONE": unsigned(good, alg="NONE"),
        "alg none with the original signature": unsigned(good) + genuine.rsplit(".", 1)[1],
        "HS384 with the same key": forge(good, algorithm="HS384"),
        "HS512 with the same key": forge(good, algorithm="HS512"),
        "RS256 header, HMAC-signed with the secret (key confusion)": hmac_signed(
            good, {"alg": "RS256", "typ": "JWT"}
        ),
        "no alg header, HMAC-signed with the secret": hmac_signed(good, {"typ": "JWT"}),
        "another key": forge(good, key=ANOTHER_KEY),
        "embedded jwk naming another key": forge(
            good,
            key=ANOTHER_KEY,
            headers={"jwk": {"kty": "oct", "k": b64url(ANOTHER_KEY.encode())}},
        ),
        "garbage": "not.a.jwt",
        "two segments": genuine.rsplit(".", 1)[0],
        "four segments": genuine + ".extra",
    }


def claim_forgeries(genuine: str) -> dict[str, str]:
    """Signed with the real key, one claim missing or wrong: each claim is checked
    (and a token of another deployment, sharing the key, is refused)."""
    good = claims_of(genuine)
    now = datetime.now(UTC)
    opposite = "refresh" if good["type"] == "access" else "access"
    return {
        "critical header extension nobody understands": forge(
            good, headers={"crit": ["x-unknown"], "x-unknown": True}
        ),
        "wrong issuer": forge({**good, "iss": "someone-else"}),
        "wrong audience": forge({**good, "aud": "another-api"}),
        "no issuer": forge(without(good, "iss")),
        "no audience": forge(without(good, "aud")),
        "no sub": forge(without(good, "sub")),
        "sub not numeric": forge({**good, "sub": "admin"}),
        "sub a JSON number": forge({**good, "sub": int(good["sub"])}),
        "no sid": forge(without(good, "sid")),
        "sid not a uuid": forge({**good, "sid": "1"}),
        "no jti": forge(without(good, "jti")),
        "jti not a uuid": forge({**good, "jti": "1"}),
        "no type": forge(without(good, "type")),
        f"type {opposite}": forge({**good, "type": opposite}),
        "type device": forge({**good, "type": "device"}),
        "type admin": forge({**good, "type": "admin"}),
        "no exp": forge(without(good, "exp")),
        "expired": forge(
            {**good, "iat": now - timedelta(hours=1), "exp": now - timedelta(minutes=1)}
        ),
        "exp not a number": forge({**good, "exp": "tomorrow"}),
        "no iat": forge(without(good, "iat")),
        "iat in the future": forge(
            {**good, "iat": now + timedelta(hours=1), "exp": now + timedelta(hours=2)}
        ),
        "nbf in the future": forge({**good, "nbf": now + timedelta(hours=1)}),
    }


def foreign_sessions(genuine: str, *, other: str) -> dict[str, str]:
    """Signed with the real key, every claim well-formed, but `sid` names no session
    or another user's (`other` is a token of the same type of another user)."""
    good = claims_of(genuine)
    return {
        "sid of no session": forge({**good, "sid": str(uuid.uuid4())}),
        "sid of another user's session": forge({**good, "sid": claims_of(other)["sid"]}),
    }


def foreign_subject(genuine: str, *, other: str) -> dict[str, str]:
    """Signed with the real key, the user's own session, but `sub` names another user."""
    return {
        "sub of another user, own session": forge(
            {**claims_of(genuine), "sub": claims_of(other)["sub"]}
        )
    }


def bad_access_tokens(pair: dict[str, Any], *, other: dict[str, Any]) -> dict[str, str]:
    """Everything that must not pass for an access token: the pair's own refresh
    token and every forgery of its access token."""
    genuine = pair["access_token"]
    return {
        "refresh token": pair["refresh_token"],
        **signature_forgeries(genuine),
        **claim_forgeries(genuine),
        **foreign_sessions(genuine, other=other["access_token"]),
        **foreign_subject(genuine, other=other["access_token"]),
    }


def bad_refresh_tokens(pair: dict[str, Any]) -> dict[str, str]:
    """The pair's access token and every forgery of its refresh token that is
    wrong in itself (foreign sessions and subjects are tests of their own)."""
    genuine = pair["refresh_token"]
    return {
        "access token": pair["access_token"],
        **signature_forgeries(genuine),
        **claim_forgeries(genuine),
    }
