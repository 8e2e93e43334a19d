"""Forging JWTs: every way a token can be wrong, derived from a genuine one.

Shared by tests/auth/test_tokens.py and the token-forgery attack suite. A forgery
names the genuine key (`kid`) unless it is about the kid: each is refused for
what it changed, not for lacking a key id.
"""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from app.signing_keys import hmac_kid
from tests.conftest import TEST_SECRET_KEY

ANOTHER_KEY = "another-secret-key-that-is-long-enough-" * 2
# The kid of the test key: what every genuine token of the test app names.
TEST_KID = hmac_kid(TEST_SECRET_KEY)


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
    key: Any = TEST_SECRET_KEY,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    kid: str | None = TEST_KID,
) -> str:
    """Signed by pyjwt; `kid` None: no kid in the header."""
    named = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm=algorithm, headers={**named, **(headers or {})})


def unsigned(claims: dict[str, Any], *, alg: str = "none", kid: str | None = TEST_KID) -> str:
    """A token with an empty signature, its header naming `alg`."""
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    return f"{b64url_json(header)}.{b64url_json(claims)}."


def hmac_signed(
    claims: dict[str, Any], header: dict[str, Any], key: str | bytes = TEST_SECRET_KEY
) -> str:
    """HMAC-SHA256 over any header at all (one pyjwt would refuse to write: a
    non-string kid, an asymmetric key as the secret), as a library confused by the
    header's `alg` (RS256 verified with the HMAC secret as the "public key") would
    accept."""
    secret = key.encode() if isinstance(key, str) else key
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
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
            good, {"alg": "RS256", "typ": "JWT", "kid": TEST_KID}
        ),
        "no alg header, HMAC-signed with the secret": hmac_signed(
            good, {"typ": "JWT", "kid": TEST_KID}
        ),
        "another key": forge(good, key=ANOTHER_KEY),
        "embedded jwk naming another key": forge(
            good,
            key=ANOTHER_KEY,
            headers={"jwk": {"kty": "oct", "k": b64url(ANOTHER_KEY.encode())}},
        ),
        **kid_forgeries(good),
        "garbage": "not.a.jwt",
        "two segments": genuine.rsplit(".", 1)[0],
        "four segments": genuine + ".extra",
    }


def kid_forgeries(claims: dict[str, Any]) -> dict[str, str]:
    """Signed with the real key: only the key id is missing or wrong."""
    return {
        "no kid": forge(claims, kid=None),
        "kid of another key": forge(claims, kid=hmac_kid(ANOTHER_KEY)),
        "kid a path": forge(claims, kid="../../../../etc/passwd"),
        "kid SQL": forge(claims, kid="' OR 1=1--"),
        "kid a number": hmac_signed(claims, {"alg": "HS256", "typ": "JWT", "kid": 1}),
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
