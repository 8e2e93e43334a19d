"""Roles and permissions: the catalogue, roles defined and granted, and every
change reaching the holder's live sessions at their next request."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.dependencies import requires
from app.policy import DESCRIPTIONS, Permission
from tests.conftest import bearer, login, register

ROLES = "/api/roles"


async def create_role(
    client: httpx.AsyncClient, token: str, name: str, permissions: list[str], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        ROLES, json={"name": name, "permissions": permissions, **extra}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_roles(
    client: httpx.AsyncClient, token: str, user_id: int, roles: list[str]
) -> httpx.Response:
    return await client.put(
        f"/api/users/{user_id}/roles", json={"roles": roles}, headers=bearer(token)
    )


async def my_permissions(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/api/users/me/permissions", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def root(admin_tokens: dict[str, Any]) -> str:
    token: str = admin_tokens["access_token"]
    return token


# --- the catalogue ------------------------------------------------------------------


async def test_the_permissions_are_listed_with_descriptions_without_a_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/permissions")
    assert response.status_code == 200
    assert response.json() == [
        {"name": p.value, "description": DESCRIPTIONS[p]} for p in Permission
    ]
    names = {p["name"] for p in response.json()}
    assert {
        "users.read",
        "users.write",
        "users.sessions",
        "items.read_all",
        "items.write_all",
        "roles.manage",
        "audit.read",
    } <= names


def test_an_unknown_permission_name_fails_where_the_route_declares_it() -> None:
    with pytest.raises(ValueError, match=r"unknown permission 'users\.reed'"):
        requires("users.reed")
    assert requires("users.read").permission is Permission.USERS_READ


async def test_the_builtin_admin_role_is_listed_first_with_every_permission(
    client: httpx.AsyncClient, root: str
) -> None:
    await create_role(client, root, "support", ["users.read"], description="Helps")
    response = await client.get(ROLES, headers=bearer(root))
    assert response.status_code == 200
    admin, support = response.json()
    assert admin == {
        "name": "admin",
        "description": admin["description"],
        "permissions": [p.value for p in Permission],
        "builtin": True,
    }
    assert support == {
        "name": "support",
        "description": "Helps",
        "permissions": ["users.read"],
        "builtin": False,
    }


# --- defining roles -------------------------------------------------------------------


async def test_a_role_is_created_with_its_permissions_once_each_in_catalogue_order(
    client: httpx.AsyncClient, root: str
) -> None:
    response = await client.post(
        ROLES,
        json={
            "name": "auditor",
            "description": "Reads the log",
            "permissions": ["items.read_all", "audit.read", "audit.read"],
        },
        headers=bearer(root),
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "auditor",
        "description": "Reads the log",
        "permissions": ["items.read_all", "audit.read"],
        "builtin": False,
    }


@pytest.mark.parametrize("name", ["support", "admin"])
async def test_a_taken_name_is_409(client: httpx.AsyncClient, root: str, name: str) -> None:
    await create_role(client, root, "support", [])
    response = await client.post(
        ROLES, json={"name": name, "permissions": []}, headers=bearer(root)
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "A role with this name already exists"}


async def test_an_unknown_permission_is_a_422_naming_it_and_the_known_ones(
    client: httpx.AsyncClient, root: str
) -> None:
    response = await client.post(
        ROLES,
        json={"name": "x", "permissions": ["users.read", "users.destroy"]},
        headers=bearer(root),
    )
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "permissions", 1]
    assert problem["input"] == "users.destroy"
    assert "'roles.manage'" in problem["msg"]


@pytest.mark.parametrize(
    "name", ["", "Admin", "9lives", "has space", "a/b", "x" * 51, "é", "\x00x"]
)
async def test_a_bad_role_name_is_a_422(client: httpx.AsyncClient, root: str, name: str) -> None:
    response = await client.post(
        ROLES, json={"name": name, "permissions": []}, headers=bearer(root)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


async def test_a_bad_role_name_in_the_path_is_a_422(client: httpx.AsyncClient, root: str) -> None:
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method, f"{ROLES}/Bad Name", json={"permissions": []}, headers=bearer(root)
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["path", "name"]


async def test_a_role_is_replaced_and_deleted_and_then_not_found(
    client: httpx.AsyncClient, root: str
) -> None:
    await create_role(client, root, "support", ["users.read"])
    replaced = await client.put(
        f"{ROLES}/support",
        json={"description": "Now reads items", "permissions": ["items.read_all"]},
        headers=bearer(root),
    )
    assert replaced.status_code == 200
    assert replaced.json()["permissions"] == ["items.read_all"]
    assert replaced.json()["description"] == "Now reads items"
    deleted = await client.delete(f"{ROLES}/support", headers=bearer(root))
    assert deleted.status_code == 204
    for method in ("PUT", "DELETE"):
        again = await client.request(
            method, f"{ROLES}/support", json={"permissions": []}, headers=bearer(root)
        )
        assert again.status_code == 404
        assert again.json() == {"detail": "Role not found"}


async def test_the_builtin_admin_role_cannot_be_changed_or_deleted(
    client: httpx.AsyncClient, root: str
) -> None:
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method, f"{ROLES}/admin", json={"permissions": []}, headers=bearer(root)
        )
        assert response.status_code == 409
        assert response.json() == {"detail": "The built-in admin role cannot be changed or deleted"}


async def test_roles_are_managed_only_with_roles_manage(
    client: httpx.AsyncClient, root: str, user_tokens: dict[str, Any]
) -> None:
    await create_role(client, root, "support", [])
    token = user_tokens["access_token"]
    attempts = [
        await client.get(ROLES, headers=bearer(token)),
        await client.post(ROLES, json={"name": "mine", "permissions": []}, headers=bearer(token)),
        await client.put(f"{ROLES}/support", json={"permissions": []}, headers=bearer(token)),
        await client.delete(f"{ROLES}/support", headers=bearer(token)),
        await set_roles(client, token, user_tokens["user"]["id"], ["support"]),
    ]
    assert [a.status_code for a in attempts] == [403] * 5
    assert (await my_permissions(client, token))["roles"] == []


# --- granting roles, effective at once ------------------------------------------------------


async def test_a_granted_role_works_at_the_holders_next_request_and_its_loss_too(
    client: httpx.AsyncClient, root: str, user_tokens: dict[str, Any]
) -> None:
    token, user_id = user_tokens["access_token"], user_tokens["user"]["id"]
    await create_role(client, root, "support", ["users.read"])
    assert (await client.get("/api/users/", headers=bearer(token))).status_code == 403

    granted = await set_roles(client, root, user_id, ["support"])
    assert granted.status_code == 200
    assert granted.json() == user_tokens["user"]  # the user, their shape unchanged
    # The same access token, no new login: the next request holds the role.
    assert (await client.get("/api/users/", headers=bearer(token))).status_code == 200
    assert await my_permissions(client, token) == {
        "roles": ["support"],
        "permissions": ["profile.read", "profile.write", "items.read", "items.write", "users.read"],
    }

    withdrawn = await set_roles(client, root, user_id, [])
    assert withdrawn.status_code == 200
    assert (await client.get("/api/users/", headers=bearer(token))).status_code == 403
    assert (await my_permissions(client, token))["roles"] == []


async def test_a_roles_change_reaches_every_live_session_of_every_holder(
    client: httpx.AsyncClient, root: str, user_tokens: dict[str, Any]
) -> None:
    other = await register(client, "bob@example.com")
    phone = await login(client)  # ada's second session
    holders = [user_tokens, phone, other]
    await create_role(client, root, "support", ["users.read"])
    for holder in (user_tokens, other):
        assert (await set_roles(client, root, holder["user"]["id"], ["support"])).status_code == 200
    for holder in holders:
        assert (await client.get("/api/users/", headers=bearer(holder["access_token"]))).is_success

    narrowed = await client.put(
        f"{ROLES}/support", json={"permissions": ["items.read_all"]}, headers=bearer(root)
    )
    assert narrowed.status_code == 200
    for holder in holders:
        listed = await client.get("/api/users/", headers=bearer(holder["access_token"]))
        assert listed.status_code == 403

    assert (await client.delete(f"{ROLES}/support", headers=bearer(root))).status_code == 204
    for holder in holders:
        assert (await my_permissions(client, holder["access_token"]))["roles"] == []


async def test_every_user_holds_the_own_things_permissions(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    assert await my_permissions(client, user_tokens["access_token"]) == {
        "roles": [],
        "permissions": ["profile.read", "profile.write", "items.read", "items.write"],
    }


async def test_is_superuser_means_holding_the_admin_role_both_ways(
    client: httpx.AsyncClient, root: str, user_tokens: dict[str, Any]
) -> None:
    token, user_id = user_tokens["access_token"], user_tokens["user"]["id"]
    granted = await set_roles(client, root, user_id, ["admin"])
    assert granted.status_code == 200
    assert granted.json()["is_superuser"] is True
    assert await my_permissions(client, token) == {
        "roles": ["admin"],
        "permissions": [p.value for p in Permission],
    }
    demoted = await client.patch(
        f"/api/users/{user_id}", json={"is_superuser": False}, headers=bearer(root)
    )
    assert demoted.json()["is_superuser"] is False
    assert (await my_permissions(client, token))["roles"] == []
    promoted = await client.patch(
        f"/api/users/{user_id}", json={"is_superuser": True}, headers=bearer(root)
    )
    assert promoted.json()["is_superuser"] is True
    assert (await my_permissions(client, token))["roles"] == ["admin"]
    me = await client.get("/api/users/me", headers=bearer(token))
    assert me.json()["is_superuser"] is True


async def test_an_unknown_role_is_a_404_naming_it_and_changes_nothing(
    client: httpx.AsyncClient, root: str, user_tokens: dict[str, Any]
) -> None:
    await create_role(client, root, "support", [])
    user_id = user_tokens["user"]["id"]
    response = await set_roles(client, root, user_id, ["support", "ghost", "phantom"])
    assert response.status_code == 404
    assert response.json() == {"detail": "Role not found: ghost, phantom"}
    assert (await my_permissions(client, user_tokens["access_token"]))["roles"] == []


async def test_roles_of_a_missing_user_or_bad_names_are_refused(
    client: httpx.AsyncClient, root: str
) -> None:
    missing = await set_roles(client, root, 2_000_000_000, [])
    assert missing.status_code == 404
    assert missing.json() == {"detail": "User not found"}
    bad = await set_roles(client, root, 1, ["Not A Name"])
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "roles", 0]


async def test_a_deleted_user_takes_their_roles_with_them(
    app: FastAPI, client: httpx.AsyncClient, root: str, user_tokens: dict[str, Any]
) -> None:
    await create_role(client, root, "support", [])
    await set_roles(client, root, user_tokens["user"]["id"], ["support"])
    deleted = await client.delete("/api/users/me", headers=bearer(user_tokens["access_token"]))
    assert deleted.status_code == 204
    async with app.state.engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM user_roles")) == 0
        assert await connection.scalar(text("SELECT count(*) FROM roles")) == 1
