"""CSRF protection of cookie-authenticated unsafe requests: without the header,
with a wrong one, or with a token of another session or user, every unsafe
operation is a 403 that changes nothing; with the session's own token it works;
bearer requests need none."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.exceptions import CsrfTokenInvalid, CsrfTokenMissing
from tests.auth.cookie_sessions import Browser, cookie_login
from tests.auth.keys import NEW_SECRET
from tests.conftest import (
    CLIENT_ADDRESS,
    PASSWORD,
    TEST_SECRET_KEY,
    app_with,
    bearer,
    client_at,
    create_item,
    register,
)
from tests.security.forge import bad_access_tokens
from tests.security.surface import snapshot


@dataclass(frozen=True)
class Scene:
    """Ada's cookie session and her item; Ada's second cookie session (another
    tab or device); Grace's cookie session."""

    ada: Browser
    ada_elsewhere: Browser
    grace: Browser
    item_id: int
    other_session_id: str


@dataclass(frozen=True)
class Unsafe:
    method: str
    path: Callable[[Scene], str]
    body: dict[str, Any] | None
    success: int

    def __str__(self) -> str:
        return f"{self.method} {self.path(EXAMPLE)}"


ITEM = {"name": "Lamp", "price": 3}
EXAMPLE = Scene(*(None,) * 3, item_id=1, other_session_id="{id}")  # type: ignore[arg-type]
UNSAFE = [
    Unsafe("POST", lambda _: "/api/items/", ITEM, 201),
    Unsafe("PUT", lambda scene: f"/api/items/{scene.item_id}", ITEM, 200),
    Unsafe("PATCH", lambda scene: f"/api/items/{scene.item_id}", {"price": 5}, 200),
    Unsafe("DELETE", lambda scene: f"/api/items/{scene.item_id}", None, 204),
    Unsafe("PATCH", lambda _: "/api/users/me", {"full_name": "Eve's choice"}, 200),
    Unsafe(
        "POST",
        lambda _: "/api/users/me/password",
        {"current_password": PASSWORD, "new_password": "chosen by eve"},
        204,
    ),
    Unsafe("DELETE", lambda _: "/api/users/me", None, 204),
    Unsafe("POST", lambda _: "/api/auth/logout-all", None, 204),
    Unsafe("DELETE", lambda scene: f"/api/auth/sessions/{scene.other_session_id}", None, 204),
]


async def stage(client: httpx.AsyncClient) -> Scene:
    ada = await register(client)
    item = await create_item(client, ada["access_token"])
    await register(client, "grace@example.com")
    grace = await cookie_login(client, "grace@example.com")
    elsewhere = await cookie_login(client)
    sessions = await client.get("/api/auth/sessions", headers=bearer(ada["access_token"]))
    other = next(session["id"] for session in sessions.json() if not session["current"])
    return Scene(
        ada=await cookie_login(client),
        ada_elsewhere=elsewhere,
        grace=grace,
        item_id=item["id"],
        other_session_id=other,
    )


def attacks(scene: Scene) -> dict[str, tuple[dict[str, str], str]]:
    """Ada's cookies with each wrong proof, and the detail its 403 gives."""
    ada, elsewhere, grace = scene.ada, scene.ada_elsewhere, scene.grace
    forged = ada.csrf[:-4] + ("AAAA" if not ada.csrf.endswith("AAAA") else "BBBB")
    return {
        "no header": (ada.headers(csrf_header=None), CsrfTokenMissing.detail),
        "no header nor cookie": (
            ada.headers(csrf_header=None, csrf_cookie=None),
            CsrfTokenMissing.detail,
        ),
        "empty header": ({**ada.headers(), "X-CSRF-Token": ""}, CsrfTokenMissing.detail),
        "header without the cookie": (ada.headers(csrf_cookie=None), CsrfTokenInvalid.detail),
        "header not the cookie": (
            ada.headers(csrf_header=elsewhere.csrf),
            CsrfTokenInvalid.detail,
        ),
        "forged signature in both": (
            ada.headers(csrf_header=forged, csrf_cookie=forged),
            CsrfTokenInvalid.detail,
        ),
        "another session of the same user in both": (
            ada.headers(csrf_header=elsewhere.csrf, csrf_cookie=elsewhere.csrf),
            CsrfTokenInvalid.detail,
        ),
        "another user's in both": (
            ada.headers(csrf_header=grace.csrf, csrf_cookie=grace.csrf),
            CsrfTokenInvalid.detail,
        ),
        "another user's header with ada's cookie": (
            ada.headers(csrf_header=grace.csrf),
            CsrfTokenInvalid.detail,
        ),
    }


@pytest.mark.parametrize("operation", UNSAFE, ids=str)
async def test_an_unsafe_cookie_request_without_its_sessions_csrf_token_is_403_changing_nothing(
    app: FastAPI, client: httpx.AsyncClient, operation: Unsafe
) -> None:
    scene = await stage(client)
    before = await snapshot(app)
    for name, (headers, detail) in attacks(scene).items():
        response = await client.request(
            operation.method, operation.path(scene), json=operation.body, headers=headers
        )
        assert response.status_code == 403, (name, response.text)
        assert response.json() == {"detail": detail}, name
        assert await snapshot(app) == before, name
    # Control: the very same request with the session's own token.
    genuine = await client.request(
        operation.method, operation.path(scene), json=operation.body, headers=scene.ada.headers()
    )
    assert genuine.status_code == operation.success, genuine.text


async def test_a_bearer_needs_no_csrf_token(client: httpx.AsyncClient) -> None:
    ada = await register(client)
    created = await client.post("/api/items/", json=ITEM, headers=bearer(ada["access_token"]))
    assert created.status_code == 201, created.text
    ended = await client.post("/api/auth/logout-all", headers=bearer(ada["access_token"]))
    assert ended.status_code == 204


@pytest.mark.parametrize(
    "value",
    [b"x" * 10_000, b"\xe9t\xe9", b"a.b.c", b".", b"%00", b"\xff" * 66],
    ids=["10,000 characters", "latin-1", "three parts", "a dot", "percent", "66 bytes of 0xff"],
)
async def test_a_malformed_csrf_token_is_a_403_never_a_500(
    app: FastAPI, client: httpx.AsyncClient, value: bytes
) -> None:
    await register(client)
    ada = await cookie_login(client)
    before = await snapshot(app)
    headers = [
        *((name.encode(), text.encode()) for name, text in ada.headers(csrf_header=None).items()),
        (b"X-CSRF-Token", value),
    ]
    response = await client.post("/api/items/", json=ITEM, headers=headers)
    assert response.status_code == 403, response.text
    assert await snapshot(app) == before


async def test_a_forged_access_cookie_is_401_whatever_the_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    """The cookie is a second way in for the same tokens: every forgery the bearer
    suite tries is refused there too, before any CSRF question."""
    ada = await register(client)
    grace = await register(client, "grace@example.com")
    browser = await cookie_login(client)
    for name, forgery in bad_access_tokens(ada, other=grace).items():
        for method, path in (("GET", "/api/users/me"), ("POST", "/api/items/")):
            response = await client.request(
                method, path, json=ITEM, headers=browser.headers(access=forgery)
            )
            assert response.status_code == 401, (name, method, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_rotated_secret_keeps_cookie_sessions_and_their_csrf_tokens_working(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client)
    ada = await cookie_login(client)
    rotated = {
        "SECRET_KEY": SecretStr(NEW_SECRET),
        "SECRET_KEY_PREVIOUS": [SecretStr(TEST_SECRET_KEY)],
    }
    async with app_with(settings, **rotated) as app, client_at(app, CLIENT_ADDRESS) as after:
        created = await after.post("/api/items/", json=ITEM, headers=ada.headers())
        assert created.status_code == 201, created.text
    removed_previous = app_with(settings, SECRET_KEY=SecretStr(NEW_SECRET))
    async with removed_previous as app, client_at(app, CLIENT_ADDRESS) as removed:
        refused = await removed.post("/api/items/", json=ITEM, headers=ada.headers())
        assert refused.status_code == 401
