"""/api/users/me: reading, editing, re-keying and deleting one's own account."""

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import (
    PASSWORD,
    assert_session_ended,
    bearer,
    count_rows,
    login,
    me,
    register,
)

USER_OUT = {"id", "email", "full_name", "is_active", "is_superuser", "is_verified", "created_at"}
NEW_PASSWORD = "a brand new passphrase"


async def patch_me(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await client.patch("/api/users/me", json=body, headers=bearer(token))


async def change_password(
    client: httpx.AsyncClient, token: str, current: str, new: str
) -> httpx.Response:
    return await client.post(
        "/api/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(token),
    )


async def test_me_returns_userout_and_never_a_password(
    client: httpx.AsyncClient,
) -> None:
    tokens = await register(client, "Ada@Example.com", full_name="Ada Lovelace")
    response = await me(client, tokens["access_token"])
    assert response.status_code == 200
    user = response.json()
    assert set(user) == USER_OUT
    assert user == {**tokens["user"], "email": "ada@example.com"}
    assert user["full_name"] == "Ada Lovelace"
    assert (user["is_active"], user["is_superuser"]) == (True, False)
    assert "password" not in response.text
    assert "$2b$" not in response.text


@pytest.mark.parametrize("headers", [{}, bearer("garbage")])
async def test_me_without_a_valid_bearer_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_patch_me_changes_the_name_at_once_and_the_email_once_its_link_is_followed(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    body = {"full_name": "Countess", "email": "Lovelace@X.ORG", "current_password": PASSWORD}
    response = await patch_me(client, token, body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert set(updated) == USER_OUT
    assert updated["full_name"] == "Countess"
    assert updated["email"] == "ada@example.com"  # until the new address's link is followed
    assert updated["id"] == user_tokens["user"]["id"]
    assert (await me(client, token)).json() == updated
    # The link mailed to the new (lower-cased) address makes it the account's.
    async with app.state.engine.connect() as connection:
        body_text = await connection.scalar(
            text("SELECT text_body FROM mail_outbox WHERE recipient = 'lovelace@x.org'")
        )
    link = re.search(r"#token=([\w-]+)", body_text)
    assert link is not None
    confirmed = await client.post("/api/auth/verify-email", json={"token": link.group(1)})
    assert confirmed.status_code == 204
    await login(client, "LOVELACE@x.org")
    old = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401


async def test_patch_me_with_only_one_field_keeps_the_other(
    client: httpx.AsyncClient,
) -> None:
    tokens = await register(client, "ada@example.com", full_name="Ada")
    body = {"email": "ada@new.example", "current_password": PASSWORD}
    response = await patch_me(client, tokens["access_token"], body)
    assert response.status_code == 200
    assert response.json()["full_name"] == "Ada"


async def test_patch_me_to_own_email_in_another_case_is_allowed(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await patch_me(client, user_tokens["access_token"], {"email": "ADA@example.com"})
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"


@pytest.mark.parametrize("email", ["grace@example.com", "GRACE@Example.COM"])
async def test_patch_me_to_another_users_email_in_any_case_is_409(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], email: str
) -> None:
    await register(client, "grace@example.com")
    token = user_tokens["access_token"]
    body = {"email": email, "full_name": "Thief", "current_password": PASSWORD}
    response = await patch_me(client, token, body)
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this email already exists"}
    assert (await me(client, token)).json() == user_tokens["user"]


@pytest.mark.parametrize(
    "body",
    [
        {"is_superuser": True},
        {"is_active": False},
        {"id": 999},
        {"password": "a new password!"},
        {"hashed_password": "x"},
        {"full_name": "Sneaky", "is_superuser": True},
        {"email": "not-an-email"},
        pytest.param({"email": None}, id="email-null"),
        {"full_name": ""},
    ],
)
async def test_patch_me_with_a_forbidden_or_invalid_field_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], body: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    response = await patch_me(client, token, body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert (await me(client, token)).json() == user_tokens["user"]
    await login(client, "ada@example.com", PASSWORD)


async def test_password_change_ends_every_session_and_swaps_the_password(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    other_session = await login(client)
    response = await change_password(client, user_tokens["access_token"], PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204
    assert response.content == b""
    for tokens in (user_tokens, other_session):
        await assert_session_ended(client, tokens)
    old = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401
    fresh = await login(client, "ada@example.com", NEW_PASSWORD)
    assert (await me(client, fresh["access_token"])).status_code == 200


async def test_wrong_current_password_is_400_and_keeps_the_old_one(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    response = await change_password(client, token, "not my password", NEW_PASSWORD)
    assert response.status_code == 400
    assert response.json() == {"detail": "The current password is incorrect"}
    assert (await me(client, token)).status_code == 200
    await login(client, "ada@example.com", PASSWORD)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("short", "at least 8 characters"),
        ("é" * 37, "72 bytes"),
        ("x" * 73, "72 bytes"),
    ],
)
async def test_unacceptable_new_password_is_422_saying_why(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], new: str, message: str
) -> None:
    token = user_tokens["access_token"]
    response = await change_password(client, token, PASSWORD, new)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "new_password"]
    assert message in error["msg"]
    assert (await me(client, token)).status_code == 200
    await login(client, "ada@example.com", PASSWORD)


async def test_new_password_of_exactly_72_bytes_is_accepted_whole(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    new = "é" * 36
    response = await change_password(client, user_tokens["access_token"], PASSWORD, new)
    assert response.status_code == 204
    await login(client, "ada@example.com", new)
    truncated = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": "é" * 35}
    )
    assert truncated.status_code == 401


async def test_delete_me_removes_the_account_its_items_and_its_sessions(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    user_id = user_tokens["user"]["id"]
    for name in ("a", "b"):
        created = await client.post(
            "/api/items/", json={"name": name, "price": 1}, headers=bearer(token)
        )
        assert created.status_code == 201
    survivor = await register(client, "grace@example.com")
    await client.post(
        "/api/items/", json={"name": "g", "price": 1}, headers=bearer(survivor["access_token"])
    )
    assert await count_rows(app, "items", user_id) == 2

    response = await client.delete("/api/users/me", headers=bearer(token))
    assert response.status_code == 204
    assert await count_rows(app, "users", user_id) == 0
    assert await count_rows(app, "items", user_id) == 0
    assert await count_rows(app, "auth_sessions", user_id) == 0
    assert await count_rows(app, "items", survivor["user"]["id"]) == 1
    assert (await me(client, token)).status_code == 401
    refresh = await client.post(
        "/api/token/refresh", json={"refresh_token": user_tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    login_again = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert login_again.status_code == 401
    again = await register(client, "ADA@example.com")
    assert again["user"]["id"] != user_id
    items = await client.get("/api/items/", headers=bearer(again["access_token"]))
    assert items.json()["total"] == 0
