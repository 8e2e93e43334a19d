"""Token responses: never cached; any spelling of an email that registration
accepts logs in; a client's double submit of a refresh token keeps its session."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import PASSWORD, login, me, register


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/token/refresh", json={"refresh_token": token})


async def test_token_responses_are_never_cached(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/api/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
    )
    logged_in = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    refreshed = await refresh(client, logged_in.json()["refresh_token"])
    for response in (registered, logged_in, refreshed):
        assert response.is_success
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"


ERROR_ANSWERS = [
    ("/api/token/", {"data": {"username": "ada@example.com", "password": "wrong guess"}}, 401),
    ("/api/token/", {"json": {"email": "not an email"}}, 422),
    ("/api/token/refresh", {"json": {"refresh_token": "garbage"}}, 401),
    ("/api/token/verify", {"json": {"token": "garbage"}}, 401),
    ("/api/auth/register", {"json": {"email": "ada@example.com", "password": PASSWORD}}, 409),
    ("/api/auth/logout", {"json": {"refresh_token": "garbage"}}, 401),
    ("/api/auth/reset-password", {"json": {"token": "x", "new_password": "long enough"}}, 400),
    ("/api/auth/verify-email", {"json": {}}, 422),
    ("/api/auth/cookie/refresh", {}, 401),
    ("/api/auth/cookie/login", {"json": {"email": "ada@example.com", "password": "nope"}}, 401),
]


@pytest.mark.parametrize(("path", "request_args", "status"), ERROR_ANSWERS)
async def test_error_answers_of_the_token_and_auth_routes_are_never_cached(
    client: httpx.AsyncClient, path: str, request_args: dict[str, Any], status: int
) -> None:
    await register(client)
    client.cookies.clear()
    response = await client.post(path, **request_args)
    assert response.status_code == status, response.text
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("Pragma") == "no-cache"


@pytest.mark.parametrize(
    ("registered", "typed"),
    [
        ("jos\u00e9@example.com", "jose\u0301@example.com"),  # NFC, then NFD
        ("jose\u0301@example.com", "jos\u00e9@example.com"),  # NFD, then NFC
        ("ada@b\u00fccher.de", "ada@xn--bcher-kva.de"),  # Unicode, then punycode
        ("ada@xn--bcher-kva.de", "ADA@B\u00dcCHER.DE"),  # punycode, then upper case
    ],
)
async def test_login_matches_every_spelling_of_the_registered_email(
    client: httpx.AsyncClient, registered: str, typed: str
) -> None:
    await register(client, registered)
    assert (await login(client, typed))["token_type"] == "bearer"


async def test_an_email_in_another_unicode_form_is_already_taken(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "jos\u00e9@example.com")
    again = await client.post(
        "/api/auth/register", json={"email": "jose\u0301@example.com", "password": PASSWORD}
    )
    assert again.status_code == 409


async def test_a_double_submit_of_a_refresh_token_keeps_the_session(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    answers = await asyncio.gather(
        *(refresh(client, user_tokens["refresh_token"]) for _ in range(2))
    )
    assert sorted(answer.status_code for answer in answers) == [200, 401]
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    assert (await me(client, winner["access_token"])).status_code == 200
    assert (await refresh(client, winner["refresh_token"])).status_code == 200


async def test_a_replay_after_the_grace_revokes_the_session(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    renewed = (await refresh(client, user_tokens["refresh_token"])).json()
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text("UPDATE refresh_tokens SET used_at = used_at - interval '1 minute'")
        )
    assert (await refresh(client, user_tokens["refresh_token"])).status_code == 401
    assert (await refresh(client, renewed["refresh_token"])).status_code == 401
    assert (await me(client, renewed["access_token"])).status_code == 401
