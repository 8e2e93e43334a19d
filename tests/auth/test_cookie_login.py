"""Cookie login: the three cookies and their attributes, the same credentials and
throttle as /api/token/, JSON only, and authentication by the access cookie."""

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.auth.cookie_sessions import (
    ACCESS,
    CSRF,
    REFRESH,
    SESSION_PATH,
    cookie_login,
    set_cookies,
)
from tests.conftest import (
    CLIENT_ADDRESS,
    PASSWORD,
    app_with,
    bearer,
    client_at,
    count_rows,
    register,
)

JSON_CREDENTIALS = json.dumps({"email": "ada@example.com", "password": PASSWORD})


async def test_login_sets_the_three_cookies_with_their_attributes(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], settings: Settings
) -> None:
    response = await client.post(
        f"{SESSION_PATH}/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    session_seconds = str(int(settings.REFRESH_TOKEN_TTL.total_seconds()))
    expected = {
        ACCESS: {"path": "/", "httponly": True, "max-age": "900"},
        REFRESH: {"path": SESSION_PATH, "httponly": True, "max-age": session_seconds},
        CSRF: {"path": "/", "httponly": False, "max-age": session_seconds},
    }
    for name, wanted in expected.items():
        cookie = cookies[name]
        assert cookie["secure"] is True, name
        assert cookie["samesite"].lower() == "strict", name
        assert cookie["path"] == wanted["path"], name
        assert cookie["max-age"] == wanted["max-age"], name
        assert cookie.get("httponly", False) is wanted["httponly"], name
        assert "domain" not in cookie, name  # __Host- and __Secure- cookies stay on this host
    body = response.json()
    assert set(body) == {"user", "csrf_token", "expires_in"}
    assert body["user"]["email"] == "ada@example.com"
    assert body["csrf_token"] == cookies[CSRF]["value"]
    assert body["expires_in"] == 900
    assert cookies[ACCESS]["value"] not in response.text  # the tokens never in the body
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_access_cookie_authenticates_reads_as_the_bearer_does(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    me = await client.get("/api/users/me", headers=browser.headers(csrf_header=None))
    assert me.status_code == 200, me.text
    assert me.json() == user_tokens["user"]
    sessions = await client.get("/api/auth/sessions", headers=browser.headers(csrf_header=None))
    listed = sessions.json()
    assert len(listed) == 2  # the registration's and the cookie login's
    assert [session["current"] for session in listed] == [True, False]  # newest first


async def test_a_real_cookie_jar_carries_the_session_from_login_to_logout(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """No header set by hand: the paths and attributes work in a client's jar."""
    login = await client.post(
        f"{SESSION_PATH}/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    assert (await client.get("/api/users/me")).status_code == 200
    created = await client.post("/api/items/", json={"name": "Lamp", "price": 3}, headers=csrf)
    assert created.status_code == 201, created.text
    refreshed = await client.post(f"{SESSION_PATH}/refresh", headers=csrf)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["csrf_token"] == client.cookies[CSRF]
    assert (await client.get("/api/items/")).json()["total"] == 1
    logout = await client.post(f"{SESSION_PATH}/logout", headers=csrf)
    assert logout.status_code == 204, logout.text
    assert not client.cookies.get(ACCESS)
    assert not client.cookies.get(REFRESH)
    assert (await client.get("/api/users/me")).status_code == 401


async def test_wrong_credentials_get_the_token_endpoints_answer_and_no_cookie(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    client.cookies.clear()
    for email, password in (("ada@example.com", "wrong password"), ("eve@example.com", PASSWORD)):
        credentials = {"email": email, "password": password}
        cookie = await client.post(f"{SESSION_PATH}/login", json=credentials)
        token = await client.post("/api/token/", json=credentials)
        assert cookie.status_code == token.status_code == 401
        assert cookie.json() == token.json()
        assert cookie.headers["WWW-Authenticate"] == token.headers["WWW-Authenticate"]
        assert set_cookies(cookie) == {}


async def test_cookie_and_token_logins_share_one_throttle(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], settings: Settings
) -> None:
    client.cookies.clear()  # a stranger: no device cookie
    wrong = {"email": "ada@example.com", "password": "wrong password"}
    for _ in range(settings.LOGIN_MAX_FAILURES):
        assert (await client.post("/api/token/", json=wrong)).status_code == 401
    refused = await client.post(
        f"{SESSION_PATH}/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert set_cookies(refused) == {}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (f"email=ada%40example.com&password={PASSWORD}", "application/x-www-form-urlencoded"),
        (JSON_CREDENTIALS, "text/plain"),
        (JSON_CREDENTIALS, None),
    ],
    ids=["form", "text/plain", "no content type"],
)
async def test_only_json_logs_in_so_no_other_sites_form_can(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    content: str,
    content_type: str | None,
) -> None:
    """What a form or a no-cors fetch of another site can send without a CORS
    preflight is refused: no login CSRF into the attacker's account."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(f"{SESSION_PATH}/login", content=content.encode(), headers=headers)
    assert response.status_code == 422, response.text
    assert set_cookies(response) == {}
    assert await count_rows(app, "auth_sessions", user_tokens["user"]["id"]) == 1


async def test_a_bearer_comes_first_and_an_invalid_one_is_not_excused_by_cookies(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    grace = await register(client, "grace@example.com")
    as_grace = await client.get(
        "/api/users/me", headers={**browser.headers(), **bearer(grace["access_token"])}
    )
    assert as_grace.json()["email"] == "grace@example.com"
    forged = await client.get(
        "/api/users/me", headers={**browser.headers(), **bearer("not-a-token")}
    )
    assert forged.status_code == 401


async def test_a_cookie_login_counts_its_device_for_the_throttle(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.post(
        f"{SESSION_PATH}/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    device = set_cookies(response)["login_device"]
    assert device["path"] == SESSION_PATH
    assert device["secure"] is True
    assert device["httponly"] is True


async def test_an_unverified_address_is_refused_as_at_the_token_endpoint(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """LOGIN_REQUIRES_VERIFIED_EMAIL holds for cookie logins too: the same 403, no
    cookie, no session."""
    async with (
        app_with(settings, LOGIN_REQUIRES_VERIFIED_EMAIL=True) as strict,
        client_at(strict, CLIENT_ADDRESS) as strict_client,
    ):
        ada = await register(strict_client)
        strict_client.cookies.clear()
        credentials = {"email": "ada@example.com", "password": PASSWORD}
        cookie = await strict_client.post(f"{SESSION_PATH}/login", json=credentials)
        token = await strict_client.post("/api/token/", json=credentials)
        assert cookie.status_code == token.status_code == 403
        assert cookie.json() == token.json()
        assert set_cookies(cookie) == {}
        assert await count_rows(app, "auth_sessions", ada["user"]["id"]) == 1
