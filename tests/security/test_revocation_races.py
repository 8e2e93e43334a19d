"""Requests racing each other: what ends sessions, guards the last superuser or
deletes an account wins cleanly, with no 500 and nothing left inconsistent."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.services import items as items_service
from tests.conftest import PASSWORD, bearer, count_rows, login, register
from tests.security.pause import PausedCall, PausedPasswordCheck

Revocation = Callable[
    [httpx.AsyncClient, dict[str, Any], dict[str, Any]], Awaitable[httpx.Response]
]


async def change_password(
    client: httpx.AsyncClient, user: dict[str, Any], _: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=bearer(user["access_token"]),
    )


async def logout_all(
    client: httpx.AsyncClient, user: dict[str, Any], _: dict[str, Any]
) -> httpx.Response:
    return await client.post("/api/auth/logout-all", headers=bearer(user["access_token"]))


async def deactivate(
    client: httpx.AsyncClient, user: dict[str, Any], admin: dict[str, Any]
) -> httpx.Response:
    return await client.patch(
        f"/api/users/{user['user']['id']}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )


async def end_sessions_by_admin(
    client: httpx.AsyncClient, user: dict[str, Any], admin: dict[str, Any]
) -> httpx.Response:
    return await client.delete(
        f"/api/users/{user['user']['id']}/sessions", headers=bearer(admin["access_token"])
    )


async def delete_account(
    client: httpx.AsyncClient, user: dict[str, Any], _: dict[str, Any]
) -> httpx.Response:
    return await client.delete("/api/users/me", headers=bearer(user["access_token"]))


async def live_sessions(app: FastAPI, user_id: int) -> int:
    async with app.state.engine.connect() as connection:
        count: int = await connection.scalar(
            text("SELECT count(*) FROM auth_sessions WHERE user_id = :id AND revoked_at IS NULL"),
            {"id": user_id},
        )
    return count


@pytest.mark.parametrize(
    "revoke",
    [change_password, logout_all, deactivate, end_sessions_by_admin, delete_account],
    ids=["password-change", "logout-all", "deactivation", "admin-ends-sessions", "deletion"],
)
async def test_a_login_in_flight_during_a_revocation_opens_no_session(
    app: FastAPI,
    client: httpx.AsyncClient,
    attacker: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    admin_tokens: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    revoke: Revocation,
) -> None:
    # The attacker's login with the (old) password is inside its bcrypt check
    # when the revocation commits.
    paused = PausedPasswordCheck(monkeypatch)
    in_flight = asyncio.create_task(
        attacker.post("/api/token/", data={"username": "ada@example.com", "password": PASSWORD})
    )
    await paused.wait_until_entered()
    revoked = await revoke(client, user_tokens, admin_tokens)
    paused.release.set()
    answer = await in_flight

    assert revoked.is_success, revoked.text
    assert answer.status_code == 401, answer.text
    assert await live_sessions(app, user_tokens["user"]["id"]) == 0


async def second_admin(client: httpx.AsyncClient, root: dict[str, Any]) -> dict[str, Any]:
    bob = await register(client, "bob@example.com")
    promoted = await client.patch(
        f"/api/users/{bob['user']['id']}",
        json={"is_superuser": True},
        headers=bearer(root["access_token"]),
    )
    assert promoted.status_code == 200
    return {**await login(client, "bob@example.com"), "user": bob["user"]}


async def remove_admin(
    client: httpx.AsyncClient, removal: str, *, by: dict[str, Any], target_id: int
) -> httpx.Response:
    headers = bearer(by["access_token"])
    path = f"/api/users/{target_id}"
    if removal == "delete":
        return await client.delete(path, headers=headers)
    flag = "is_superuser" if removal == "demote" else "is_active"
    return await client.patch(path, json={flag: False}, headers=headers)


@pytest.mark.parametrize("removal", ["demote", "deactivate", "delete"])
async def test_two_admins_removing_each_other_at_once_leave_one_superuser(
    app: FastAPI, client: httpx.AsyncClient, admin_tokens: dict[str, Any], removal: str
) -> None:
    root_id = (
        await client.get("/api/users/me", headers=bearer(admin_tokens["access_token"]))
    ).json()["id"]
    bob = await second_admin(client, admin_tokens)
    answers = await asyncio.gather(
        remove_admin(client, removal, by=admin_tokens, target_id=bob["user"]["id"]),
        remove_admin(client, removal, by=bob, target_id=root_id),
    )
    # One wins; the other is refused: 409 by the guard, or 401/403 when the
    # winner took its rights (or account) before its own request was checked.
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] in (200, 204), [answer.text for answer in answers]
    assert statuses[1] in (401, 403, 409), [answer.text for answer in answers]
    async with app.state.engine.connect() as connection:
        superusers = await connection.scalar(
            text("SELECT count(*) FROM users WHERE is_superuser AND is_active")
        )
    assert superusers == 1


async def test_an_item_created_while_its_owner_is_deleted_is_a_401_not_a_500(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The creation is past authentication when the account is deleted.
    paused = PausedCall(monkeypatch, items_service, "create_item")
    headers = bearer(user_tokens["access_token"])
    creation = asyncio.create_task(
        client.post("/api/items/", json={"name": "late", "price": 1}, headers=headers)
    )
    await paused.wait_until_entered()
    deletion = await client.delete("/api/users/me", headers=headers)
    paused.release.set()
    created = await creation

    assert deletion.status_code == 204
    assert created.status_code == 401, created.text
    assert created.json() == {"detail": "The account no longer exists"}
    assert await count_rows(app, "items", user_tokens["user"]["id"]) == 0
