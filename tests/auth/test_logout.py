from typing import Any

import httpx

from tests.conftest import assert_session_ended, bearer, login


async def test_logout_revokes_the_session_its_refresh_and_access_tokens(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    rotated = (
        await client.post(
            "/api/token/refresh", json={"refresh_token": user_tokens["refresh_token"]}
        )
    ).json()
    response = await client.post(
        "/api/auth/logout", json={"refresh_token": rotated["refresh_token"]}
    )
    assert response.status_code == 204
    assert response.content == b""
    again = await client.post(
        "/api/token/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert again.status_code == 401
    for pair in (user_tokens, rotated):
        me = await client.get("/api/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401


async def test_logout_leaves_other_sessions_working(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    other = await login(client)
    await client.post("/api/auth/logout", json={"refresh_token": user_tokens["refresh_token"]})
    assert (await client.get("/api/users/me", headers=bearer(other["access_token"]))).is_success


async def test_logout_with_an_invalid_token_is_401(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    for token in ("garbage", user_tokens["access_token"]):
        response = await client.post("/api/auth/logout", json={"refresh_token": token})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_logout_all_ends_every_session_access_tokens_included(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    laptop = await login(client)
    phone = await login(client)
    response = await client.post("/api/auth/logout-all", headers=bearer(laptop["access_token"]))
    assert response.status_code == 204
    for pair in (user_tokens, laptop, phone):
        await assert_session_ended(client, pair)
    # A fresh login works straight away (no clock-granularity lockout).
    fresh = await login(client)
    assert (await client.get("/api/users/me", headers=bearer(fresh["access_token"]))).is_success


async def test_logout_all_ends_only_the_callers_sessions(client: httpx.AsyncClient) -> None:
    from tests.conftest import register

    ada = await register(client, "ada@example.com")
    bob = await register(client, "bob@example.com")
    await client.post("/api/auth/logout-all", headers=bearer(ada["access_token"]))
    assert (await client.get("/api/users/me", headers=bearer(bob["access_token"]))).is_success
