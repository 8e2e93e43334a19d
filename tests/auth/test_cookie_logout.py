"""Ending cookie sessions: logout revokes the session at once and expires the
cookies with the attributes they were set with; it needs the CSRF token; and
every other way of ending sessions (logout-all, password change, ending the
session from the list) ends cookie sessions too."""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from fastapi import FastAPI

from app.exceptions import CsrfTokenInvalid, CsrfTokenMissing
from tests.auth.cookie_sessions import (
    ACCESS,
    CSRF,
    REFRESH,
    SESSION_PATH,
    Browser,
    cookie_login,
    set_cookies,
)
from tests.conftest import PASSWORD, bearer, login, register
from tests.security.surface import snapshot

LOGOUT_URL = f"{SESSION_PATH}/logout"


async def assert_cookie_session_ended(client: httpx.AsyncClient, browser: Browser) -> None:
    """Neither cookie works any more: reads by the access cookie are 401, the
    refresh cookie cannot be spent."""
    me = await client.get("/api/users/me", headers=browser.headers())
    assert me.status_code == 401
    refresh = await client.post(f"{SESSION_PATH}/refresh", headers=browser.session_headers())
    assert refresh.status_code == 401


async def test_logout_ends_the_session_at_once_and_expires_the_cookies(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    other = await cookie_login(client)
    response = await client.post(LOGOUT_URL, headers=browser.session_headers())
    assert response.status_code == 204, response.text
    cookies = set_cookies(response)
    for name, path, httponly in (
        (ACCESS, "/", True),
        (REFRESH, SESSION_PATH, True),
        (CSRF, "/", False),
    ):
        cookie = cookies[name]
        assert cookie["value"] in ("", '""'), name
        assert cookie["max-age"] == "0", name
        assert parsedate_to_datetime(cookie["expires"]) <= datetime.now(UTC), name
        # A deletion the browser honours: the attributes the cookie was set with.
        assert cookie["path"] == path, name
        assert cookie["secure"] is True, name
        assert cookie["samesite"].lower() == "strict", name
        assert cookie.get("httponly", False) is httponly, name
    await assert_cookie_session_ended(client, browser)
    assert (await client.get("/api/users/me", headers=other.headers())).status_code == 200


async def test_logout_without_the_sessions_csrf_token_is_403_and_the_session_lives(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """Another site cannot log a browser out."""
    browser = await cookie_login(client)
    elsewhere = await cookie_login(client)
    before = await snapshot(app)
    for headers, detail in (
        (browser.session_headers(csrf_header=None), CsrfTokenMissing.detail),
        (browser.session_headers(csrf_header="forged"), CsrfTokenInvalid.detail),
        (
            browser.session_headers(csrf_header=elsewhere.csrf, csrf_cookie=elsewhere.csrf),
            CsrfTokenInvalid.detail,
        ),
    ):
        refused = await client.post(LOGOUT_URL, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json() == {"detail": detail}
        assert set_cookies(refused) == {}
        assert await snapshot(app) == before
    assert (await client.get("/api/users/me", headers=browser.headers())).status_code == 200


async def test_logout_with_another_users_refresh_cookie_ends_nothing(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    victim = await cookie_login(client)
    await register(client, "eve@example.com")
    eve = await cookie_login(client, "eve@example.com")
    before = await snapshot(app)
    response = await client.post(LOGOUT_URL, headers=eve.session_headers(refresh=victim.refresh))
    assert response.status_code == 403
    assert await snapshot(app) == before


async def test_logout_without_a_refresh_cookie_is_401(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    response = await client.post(LOGOUT_URL, headers=browser.headers())
    assert response.status_code == 401
    assert (await client.get("/api/users/me", headers=browser.headers())).status_code == 200


async def test_logout_all_by_bearer_ends_cookie_sessions(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    ended = await client.post("/api/auth/logout-all", headers=bearer(user_tokens["access_token"]))
    assert ended.status_code == 204
    await assert_cookie_session_ended(client, browser)


async def test_a_password_change_by_cookie_ends_every_session_its_own_included(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    elsewhere = await cookie_login(client)
    changed = await client.post(
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another password"},
        headers=browser.headers(),
    )
    assert changed.status_code == 204, changed.text
    for ended in (browser, elsewhere):
        await assert_cookie_session_ended(client, ended)
    bearer_me = await client.get("/api/users/me", headers=bearer(user_tokens["access_token"]))
    assert bearer_me.status_code == 401
    assert (await login(client, password="another password"))["access_token"]


async def test_ending_a_cookie_session_from_the_list_ends_its_cookies(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    listed = await client.get("/api/auth/sessions", headers=browser.headers())
    [current] = [session["id"] for session in listed.json() if session["current"]]
    ended = await client.delete(
        f"/api/auth/sessions/{current}", headers=bearer(user_tokens["access_token"])
    )
    assert ended.status_code == 204
    await assert_cookie_session_ended(client, browser)


async def test_deactivating_a_user_ends_their_cookie_sessions(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    deactivated = await client.patch(
        f"/api/users/{user_tokens['user']['id']}",
        json={"is_active": False},
        headers=bearer(admin_tokens["access_token"]),
    )
    assert deactivated.status_code == 200, deactivated.text
    await assert_cookie_session_ended(client, browser)
