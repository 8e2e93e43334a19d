"""Every rule a token obeys, wherever a bearer token is read."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from app.config import Settings
from tests.conftest import bearer, register
from tests.security.forge import claims_of, forge

BEARER_ENDPOINTS = [
    ("GET", "/api/users/me"),
    ("GET", "/api/items/"),
    ("POST", "/api/auth/logout-all"),
]


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
    from tests.conftest import login

    first = await register(client)
    second = await login(client)
    jtis = {
        claims_of(token)["jti"]
        for pair in (first, second)
        for token in (pair["access_token"], pair["refresh_token"])
    }
    assert len(jtis) == 4


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
