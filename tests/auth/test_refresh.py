"""Refresh tokens rotate, are single use, and a reuse revokes the family."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import bearer, login, register
from tests.security.forge import forge


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/token/refresh", json={"refresh_token": token})


async def test_refresh_returns_a_new_pair_of_the_same_shape(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await refresh(client, user_tokens["refresh_token"])
    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["refresh_token"] != user_tokens["refresh_token"]
    assert pair["access_token"] != user_tokens["access_token"]
    me = await client.get("/api/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200


async def test_a_refresh_token_works_only_once(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    assert (await refresh(client, user_tokens["refresh_token"])).status_code == 200
    again = await refresh(client, user_tokens["refresh_token"])
    assert again.status_code == 401
    assert again.headers["WWW-Authenticate"] == "Bearer"


async def test_reusing_a_spent_token_revokes_every_descendant_and_their_access_tokens(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    second = (await refresh(client, user_tokens["refresh_token"])).json()
    third = (await refresh(client, second["refresh_token"])).json()
    # An attacker replays the first (spent) token:
    assert (await refresh(attacker, user_tokens["refresh_token"])).status_code == 401
    # The legitimate holder's newest tokens are dead too: log in again.
    assert (await refresh(client, third["refresh_token"])).status_code == 401
    for pair in (user_tokens, second, third):
        me = await client.get("/api/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401
    assert (await login(client))["access_token"]


async def test_a_reuse_leaves_the_users_other_sessions_alone(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    other_device = await login(client)
    renewed = (await refresh(client, user_tokens["refresh_token"])).json()
    # A reuse revokes that family only:
    await refresh(attacker, user_tokens["refresh_token"])
    assert (await refresh(client, renewed["refresh_token"])).status_code == 401
    assert (
        await client.get("/api/users/me", headers=bearer(other_device["access_token"]))
    ).is_success
    assert (await refresh(client, other_device["refresh_token"])).status_code == 200


async def test_of_twenty_concurrent_refreshes_with_one_token_exactly_one_succeeds(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], app: FastAPI
) -> None:
    responses = await asyncio.gather(
        *(refresh(client, user_tokens["refresh_token"]) for _ in range(20))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * 19
    # They really raced in the database: the token row was spent once.
    async with app.state.engine.connect() as connection:
        spent = await connection.scalar(
            text("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
        )
    assert spent == 1


async def test_an_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await refresh(client, user_tokens["access_token"])
    assert response.status_code == 401


async def test_an_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    claims = jwt.decode(user_tokens["refresh_token"], options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(days=30)
    expired = forge({**claims, "iat": past, "exp": past + timedelta(days=14)})
    assert (await refresh(client, expired)).status_code == 401


async def test_a_forged_refresh_token_with_an_unknown_jti_is_refused(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    claims = jwt.decode(user_tokens["refresh_token"], options={"verify_signature": False})
    forged = forge({**claims, "jti": "00000000-0000-4000-8000-000000000000"})
    assert (await refresh(client, forged)).status_code == 401


async def test_malformed_refresh_requests_are_422(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/token/refresh", json={})).status_code == 422
    assert (await client.post("/api/token/refresh", json={"token": "x"})).status_code == 422


async def test_the_database_never_holds_a_replayable_refresh_token(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    pair = await register(client)
    rotated = (await refresh(client, pair["refresh_token"])).json()
    rows: list[str] = []
    async with app.state.engine.connect() as connection:
        for table in ("refresh_tokens", "auth_sessions", "users"):
            result = await connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            rows.extend(str(row) for row in result.all())
    dump = " ".join(rows)
    for token in (pair["refresh_token"], rotated["refresh_token"]):
        signature = token.rsplit(".", 1)[1]
        assert token not in dump
        assert signature not in dump
