"""Refreshing a cookie session: the cookies rotate as /api/token/refresh rotates
tokens, a spent refresh cookie presented again ends the session, and nothing is
spent without the session's CSRF token."""

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
    cookie_refresh,
    set_cookies,
)
from tests.conftest import register
from tests.security.forge import bad_refresh_tokens
from tests.security.surface import snapshot

REFRESH_URL = f"{SESSION_PATH}/refresh"


async def me(client: httpx.AsyncClient, browser: Browser) -> int:
    return (await client.get("/api/users/me", headers=browser.headers())).status_code


async def test_a_refresh_rotates_both_token_cookies_and_keeps_the_csrf_token(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    response = await client.post(REFRESH_URL, headers=browser.session_headers())
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    assert cookies[ACCESS]["value"] != browser.access
    assert cookies[REFRESH]["value"] != browser.refresh
    assert cookies[CSRF]["value"] == browser.csrf == response.json()["csrf_token"]
    assert response.json()["expires_in"] == 900
    assert cookies[REFRESH]["path"] == SESSION_PATH
    assert cookies[ACCESS]["httponly"] is True
    assert response.headers["Cache-Control"] == "no-store"
    client.cookies.clear()
    rotated = await cookie_refresh(client, browser_with(cookies, browser))
    assert await me(client, rotated) == 200


def browser_with(cookies: dict[str, dict[str, Any]], browser: Browser) -> Browser:
    return Browser(
        access=cookies[ACCESS]["value"],
        refresh=cookies[REFRESH]["value"],
        csrf=cookies[CSRF]["value"],
        user=browser.user,
    )


async def test_a_spent_refresh_cookie_replayed_ends_the_session(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """A thief holding a copy of the cookies (and the readable CSRF token) replays
    the refresh cookie the browser already spent: the whole session ends, the
    browser's rotated cookies with it (RFC 9700 §4.14.2)."""
    stolen = await cookie_login(client)
    rotated = await cookie_refresh(client, stolen)
    replay = await attacker.post(REFRESH_URL, headers=stolen.session_headers())
    assert replay.status_code == 401
    assert set_cookies(replay) == {}
    assert await me(client, rotated) == 401
    again = await client.post(REFRESH_URL, headers=rotated.session_headers())
    assert again.status_code == 401


async def test_a_refresh_cookie_works_once_for_its_owner_too(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    await cookie_refresh(client, browser)
    twice = await client.post(REFRESH_URL, headers=browser.session_headers())
    assert twice.status_code == 401


async def test_without_the_sessions_csrf_token_a_refresh_spends_nothing(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    elsewhere = await cookie_login(client)
    await register(client, "grace@example.com")
    grace = await cookie_login(client, "grace@example.com")
    before = await snapshot(app)
    for headers, detail in (
        (browser.session_headers(csrf_header=None), CsrfTokenMissing.detail),
        (browser.session_headers(csrf_cookie=None), CsrfTokenInvalid.detail),
        (browser.session_headers(csrf_header=elsewhere.csrf), CsrfTokenInvalid.detail),
        (
            browser.session_headers(csrf_header=elsewhere.csrf, csrf_cookie=elsewhere.csrf),
            CsrfTokenInvalid.detail,
        ),
        (
            browser.session_headers(csrf_header=grace.csrf, csrf_cookie=grace.csrf),
            CsrfTokenInvalid.detail,
        ),
    ):
        refused = await client.post(REFRESH_URL, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json() == {"detail": detail}
        assert set_cookies(refused) == {}
        assert await snapshot(app) == before
    assert (await cookie_refresh(client, browser)).csrf == browser.csrf  # still unspent


async def test_another_users_refresh_cookie_is_refused_with_ones_own_csrf_token(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    victim = await cookie_login(client)
    await register(client, "eve@example.com")
    eve = await cookie_login(client, "eve@example.com")
    before = await snapshot(app)
    response = await client.post(REFRESH_URL, headers=eve.session_headers(refresh=victim.refresh))
    assert response.status_code == 403
    assert await snapshot(app) == before


async def test_no_or_a_forged_refresh_cookie_is_401_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    browser = await cookie_login(client)
    before = await snapshot(app)
    missing = await client.post(REFRESH_URL, headers=browser.headers())
    assert missing.status_code == 401
    pair = {"access_token": browser.access, "refresh_token": browser.refresh}
    for name, forgery in bad_refresh_tokens(pair).items():
        response = await client.post(REFRESH_URL, headers=browser.session_headers(refresh=forgery))
        assert response.status_code == 401, (name, response.text)
    assert await snapshot(app) == before
