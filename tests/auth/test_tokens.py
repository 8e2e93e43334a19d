"""Every rule a token obeys, wherever a bearer token is read."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from app.config import Settings
from tests.conftest import TEST_SECRET_KEY, bearer

BEARER_ENDPOINTS = [
    ("GET", "/api/users/me"),
    ("GET", "/api/items/"),
    ("POST", "/api/auth/logout-all"),
]


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def forge(claims: dict[str, Any], *, key: str = TEST_SECRET_KEY, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_access_tokens_carry_the_required_claims(
    user_tokens: dict[str, Any], settings: Settings
) -> None:
    token = user_tokens["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = claims_of(token)
    assert claims["sub"] == str(user_tokens["user"]["id"])
    assert claims["type"] == "access"
    assert claims["iss"] == settings.JWT_ISSUER
    assert claims["aud"] == settings.JWT_AUDIENCE
    assert claims["exp"] - claims["iat"] == 15 * 60
    uuid.UUID(claims["jti"])
    assert claims_of(user_tokens["refresh_token"])["type"] == "refresh"
    assert claims_of(user_tokens["refresh_token"])["exp"] - claims["iat"] == 14 * 24 * 3600


async def test_every_token_has_its_own_jti(client: httpx.AsyncClient) -> None:
    from tests.conftest import login, register

    first = await register(client)
    second = await login(client)
    jtis = {
        claims_of(token)["jti"]
        for pair in (first, second)
        for token in (pair["access_token"], pair["refresh_token"])
    }
    assert len(jtis) == 4


def _tamper(token: str) -> str:
    """Change `sub` and keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "999"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def bad_tokens(pair: dict[str, Any]) -> dict[str, str]:
    good = claims_of(pair["access_token"]) if pair else {}
    now = datetime.now(UTC)
    return {
        "refresh token as bearer": pair.get("refresh_token", ""),
        "tampered payload": _tamper(pair["access_token"]) if pair else "",
        "alg none": unsigned(good),
        "HS512 with the same key": forge(good, algorithm="HS512"),
        "HS384 with the same key": forge(good, algorithm="HS384"),
        "another key": forge(good, key="another-secret-key-that-is-long-enough-" * 2),
        "wrong issuer": forge({**good, "iss": "someone-else"}),
        "wrong audience": forge({**good, "aud": "another-api"}),
        "expired": forge(
            {**good, "iat": now - timedelta(hours=1), "exp": now - timedelta(minutes=1)}
        ),
        "no jti": forge({k: v for k, v in good.items() if k != "jti"}),
        "no type": forge({k: v for k, v in good.items() if k != "type"}),
        "no exp": forge({k: v for k, v in good.items() if k != "exp"}),
        "garbage": "not.a.jwt",
    }


VARIANT_NAMES = list(bad_tokens({}))


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize(("method", "path"), BEARER_ENDPOINTS)
async def test_a_bad_bearer_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], variant: str, method: str, path: str
) -> None:
    tokens = bad_tokens(user_tokens)
    response = await client.request(method, path, headers=bearer(tokens[variant]))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Could not validate credentials"}
    # The real token still works: the failure is the variant's, not the user's.
    ok = await client.get("/api/users/me", headers=bearer(user_tokens["access_token"]))
    assert ok.status_code == 200


@pytest.mark.parametrize(("method", "path"), BEARER_ENDPOINTS)
async def test_a_missing_bearer_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_deleted_users_tokens_are_refused(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    headers = bearer(user_tokens["access_token"])
    assert (await client.delete("/api/users/me", headers=headers)).status_code == 204
    assert (await client.get("/api/users/me", headers=headers)).status_code == 401
    refreshed = await client.post(
        "/api/token/refresh", json={"refresh_token": user_tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_verify_accepts_a_valid_access_token(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.post("/api/token/verify", json={"token": user_tokens["access_token"]})
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize("which", ["refresh", "garbage", "expired", "revoked"])
async def test_verify_refuses_anything_but_a_live_access_token(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], which: str
) -> None:
    good = claims_of(user_tokens["access_token"])
    now = datetime.now(UTC)
    token = {
        "refresh": user_tokens["refresh_token"],
        "garbage": "garbage",
        "expired": forge({**good, "iat": now - timedelta(hours=1), "exp": now - timedelta(1)}),
        "revoked": user_tokens["access_token"],
    }[which]
    if which == "revoked":
        await client.post("/api/auth/logout", json={"refresh_token": user_tokens["refresh_token"]})
    response = await client.post("/api/token/verify", json={"token": token})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
