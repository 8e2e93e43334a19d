"""Roles cannot be turned into more rights than one holds: nobody grants,
withdraws, defines, widens or deletes a role holding a permission they lack, nor
touches an account that outranks them; the last active holder of roles.manage
keeps it, even under concurrent changes; an own-account body cannot carry roles;
and the rights a request holds cost no query beyond the one that authenticates
it."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text

from tests.conftest import bearer, login, register

MANAGER_PERMISSIONS = ["roles.manage", "users.read"]


async def define(client: httpx.AsyncClient, token: str, name: str, permissions: list[str]) -> None:
    response = await client.post(
        "/api/roles", json={"name": name, "permissions": permissions}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text


async def grant(client: httpx.AsyncClient, token: str, user_id: int, roles: list[str]) -> int:
    response = await client.put(
        f"/api/users/{user_id}/roles", json={"roles": roles}, headers=bearer(token)
    )
    return response.status_code


@pytest.fixture
async def manager(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> dict[str, Any]:
    """A user holding roles.manage and users.read only (role `manager`), and a
    role `powerful` holding more than that, defined by the admin."""
    root = admin_tokens["access_token"]
    await define(client, root, "manager", MANAGER_PERMISSIONS)
    await define(client, root, "powerful", ["users.write", "users.read"])
    await define(client, root, "reader", ["users.read"])
    manager = await register(client, "manager@example.com")
    assert await grant(client, root, manager["user"]["id"], ["manager"]) == 200
    return manager


async def test_a_role_holding_a_permission_one_lacks_cannot_be_granted(
    client: httpx.AsyncClient, manager: dict[str, Any]
) -> None:
    victim = await register(client, "victim@example.com")
    token = manager["access_token"]
    for roles in (["powerful"], ["admin"], ["reader", "powerful"]):
        assert await grant(client, token, victim["user"]["id"], roles) == 403
        # Not even to oneself.
        assert await grant(client, token, manager["user"]["id"], ["manager", *roles]) == 403
    refused = await client.put(
        f"/api/users/{victim['user']['id']}/roles",
        json={"roles": ["powerful"]},
        headers=bearer(token),
    )
    assert refused.json() == {
        "detail": "Not enough privileges: the role holds permissions you lack (users.write)"
    }
    # What the manager holds, they may pass on.
    assert await grant(client, token, victim["user"]["id"], ["reader", "manager"]) == 200


async def test_a_role_holding_a_permission_one_lacks_cannot_be_withdrawn(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], manager: dict[str, Any]
) -> None:
    strong = await register(client, "strong@example.com")
    assert await grant(client, admin_tokens["access_token"], strong["user"]["id"], ["powerful"])
    assert await grant(client, manager["access_token"], strong["user"]["id"], []) == 403
    root_id = (
        await client.get("/api/users/me", headers=bearer(admin_tokens["access_token"]))
    ).json()["id"]
    assert await grant(client, manager["access_token"], root_id, []) == 403


async def test_a_role_cannot_be_defined_widened_or_deleted_beyond_ones_permissions(
    client: httpx.AsyncClient, manager: dict[str, Any]
) -> None:
    token = bearer(manager["access_token"])
    create = await client.post(
        "/api/roles", json={"name": "mine", "permissions": ["users.write"]}, headers=token
    )
    widen = await client.put(
        "/api/roles/reader", json={"permissions": ["users.read", "audit.read"]}, headers=token
    )
    # Narrowing a role holding more than oneself is withdrawing what one lacks.
    narrow = await client.put(
        "/api/roles/powerful", json={"permissions": ["users.read"]}, headers=token
    )
    delete = await client.delete("/api/roles/powerful", headers=token)
    assert [r.status_code for r in (create, widen, narrow, delete)] == [403] * 4
    own = await client.put("/api/roles/reader", json={"permissions": []}, headers=token)
    assert own.status_code == 200
    fine = await client.post(
        "/api/roles", json={"name": "mine", "permissions": ["users.read"]}, headers=token
    )
    assert fine.status_code == 201


async def test_the_admin_flag_is_the_admin_role_and_needs_every_permission(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    """A users.write role may edit accounts, but not make anyone an admin nor
    touch an account holding what it lacks."""
    root = admin_tokens["access_token"]
    await define(client, root, "editor", ["users.write", "users.read"])
    editor = await register(client, "editor@example.com")
    victim = await register(client, "victim@example.com")
    assert await grant(client, root, editor["user"]["id"], ["editor"]) == 200
    headers = bearer(editor["access_token"])
    root_id = (await client.get("/api/users/me", headers=bearer(root))).json()["id"]

    for target in (victim["user"]["id"], editor["user"]["id"]):
        promote = await client.patch(
            f"/api/users/{target}", json={"is_superuser": True}, headers=headers
        )
        assert promote.status_code == 403, promote.text
    for request in (
        client.patch(f"/api/users/{root_id}", json={"is_active": False}, headers=headers),
        client.patch(f"/api/users/{root_id}", json={"full_name": "Pwned"}, headers=headers),
        client.delete(f"/api/users/{root_id}", headers=headers),
    ):
        assert (await request).status_code == 403
    renamed = await client.patch(
        f"/api/users/{victim['user']['id']}", json={"full_name": "Renamed"}, headers=headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["is_superuser"] is False


async def test_sessions_and_keys_of_an_account_holding_more_are_not_the_callers(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    """A users.sessions role ends a user's sessions and revokes their keys, but
    not an admin's: the admin's session and key live on."""
    root = admin_tokens["access_token"]
    await define(client, root, "support", ["users.sessions", "users.read"])
    support = await register(client, "support@example.com")
    user = await register(client, "user@example.com")
    assert await grant(client, root, support["user"]["id"], ["support"]) == 200
    headers = bearer(support["access_token"])
    root_id = (await client.get("/api/users/me", headers=bearer(root))).json()["id"]
    key = await client.post(
        "/api/auth/api-keys", json={"name": "ops", "scopes": ["profile.read"]}, headers=bearer(root)
    )
    assert key.status_code == 201
    refused = await client.delete(f"/api/users/{root_id}/sessions", headers=headers)
    assert refused.status_code == 403
    kept = await client.delete(f"/api/users/{root_id}/api-keys/{key.json()['id']}", headers=headers)
    assert kept.status_code == 403
    assert (await client.get("/api/users/me", headers=bearer(root))).status_code == 200
    assert (await client.get("/api/users/me", headers=bearer(key.json()["key"]))).status_code == 200
    # Control: an account holding no more than the caller is theirs to reach.
    ended = await client.delete(f"/api/users/{user['user']['id']}/sessions", headers=headers)
    assert ended.status_code == 204
    assert (
        await client.get("/api/users/me", headers=bearer(user["access_token"]))
    ).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"roles": ["admin"]},
        {"permissions": ["users.write"]},
        {"full_name": "Sneaky", "roles": ["admin"]},
    ],
)
async def test_roles_cannot_be_assigned_through_the_own_profile(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], body: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    response = await client.patch("/api/users/me", json=body, headers=bearer(token))
    assert response.status_code == 422
    mine = await client.get("/api/users/me/permissions", headers=bearer(token))
    assert mine.json()["roles"] == []


# --- the last holder of roles.manage ------------------------------------------------------


@pytest.fixture
async def managers_only(app: FastAPI, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """No admin at all: two accounts hold roles.manage through the role `keeper`
    (set up in the database, as an operator would have)."""
    ann = await register(client, "ann@example.com")
    bob = await register(client, "bob@example.com")
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO roles (name, permissions) VALUES"
                " ('keeper', '{roles.manage,users.read,users.write}'), ('extra', '{}')"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO user_roles (user_id, role_id)"
                " SELECT u, id FROM roles, unnest(CAST(:ids AS integer[])) AS u"
                " WHERE name = 'keeper'"
            ),
            {"ids": [ann["user"]["id"], bob["user"]["id"]]},
        )
    return [ann, bob]


async def active_managers(app: FastAPI) -> int:
    async with app.state.engine.connect() as connection:
        count: int = await connection.scalar(
            text(
                "SELECT count(*) FROM users JOIN user_roles ON user_roles.user_id = users.id"
                " JOIN roles ON roles.id = user_roles.role_id"
                " WHERE users.is_active AND 'roles.manage' = ANY(roles.permissions)"
            )
        )
    return count


async def test_the_last_holder_of_roles_manage_cannot_lose_it_in_any_way(
    app: FastAPI, client: httpx.AsyncClient, managers_only: list[dict[str, Any]]
) -> None:
    ann, bob = managers_only
    token = bearer(ann["access_token"])
    assert await grant(client, ann["access_token"], bob["user"]["id"], ["extra"]) == 200
    assert await active_managers(app) == 1
    attempts = [
        await client.put(
            f"/api/users/{ann['user']['id']}/roles", json={"roles": ["extra"]}, headers=token
        ),
        await client.put("/api/roles/keeper", json={"permissions": ["users.read"]}, headers=token),
        await client.delete("/api/roles/keeper", headers=token),
        await client.patch(
            f"/api/users/{ann['user']['id']}", json={"is_active": False}, headers=token
        ),
        await client.delete(f"/api/users/{ann['user']['id']}", headers=token),
        await client.delete("/api/users/me", headers=token),
    ]
    assert [a.status_code for a in attempts] == [409] * 6, [a.text for a in attempts]
    assert attempts[0].json() == {"detail": "The last active holder of roles.manage cannot lose it"}
    assert await active_managers(app) == 1
    # Another holder first, and then it may go.
    assert await grant(client, ann["access_token"], bob["user"]["id"], ["keeper"]) == 200
    assert await grant(client, ann["access_token"], ann["user"]["id"], []) == 200
    assert await active_managers(app) == 1


@pytest.mark.parametrize("removal", ["withdraw", "deactivate", "delete"])
async def test_two_managers_removing_each_other_at_once_leave_one(
    app: FastAPI, client: httpx.AsyncClient, managers_only: list[dict[str, Any]], removal: str
) -> None:
    ann, bob = managers_only

    async def remove(by: dict[str, Any], target: dict[str, Any]) -> int:
        headers = bearer(by["access_token"])
        path = f"/api/users/{target['user']['id']}"
        if removal == "withdraw":
            return (
                await client.put(f"{path}/roles", json={"roles": []}, headers=headers)
            ).status_code
        if removal == "deactivate":
            return (
                await client.patch(path, json={"is_active": False}, headers=headers)
            ).status_code
        return (await client.delete(path, headers=headers)).status_code

    statuses = sorted(await asyncio.gather(remove(ann, bob), remove(bob, ann)))
    # One wins; the other is refused: 409 by the guard, or 401/403 when the
    # winner took its rights (or account) before its own request was checked.
    assert statuses[0] in (200, 204), statuses
    assert statuses[1] in (401, 403, 409), statuses
    assert await active_managers(app) == 1


async def test_two_managers_deleting_each_others_role_at_once_leave_one(
    app: FastAPI, client: httpx.AsyncClient, managers_only: list[dict[str, Any]]
) -> None:
    """Each holds roles.manage through a role of their own, and deletes the
    other's."""
    ann, bob = managers_only
    async with app.state.engine.begin() as connection:
        await connection.execute(text("DELETE FROM user_roles"))
        for name, holder in (("ann-role", ann), ("bob-role", bob)):
            await connection.execute(
                text(
                    "WITH role AS (INSERT INTO roles (name, permissions)"
                    " VALUES (:name, '{roles.manage}') RETURNING id)"
                    " INSERT INTO user_roles (user_id, role_id) SELECT :user_id, id FROM role"
                ),
                {"name": name, "user_id": holder["user"]["id"]},
            )
    statuses = sorted(
        response.status_code
        for response in await asyncio.gather(
            client.delete("/api/roles/bob-role", headers=bearer(ann["access_token"])),
            client.delete("/api/roles/ann-role", headers=bearer(bob["access_token"])),
        )
    )
    assert statuses[0] == 204, statuses
    assert statuses[1] in (403, 409), statuses
    assert await active_managers(app) == 1


# --- the cost of rights -------------------------------------------------------------------


@contextmanager
def counted_statements(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the app runs, through the read pool or the engine."""
    statements: list[str] = []
    reader = app.state.reader
    fetch_one, fetch_all = reader.fetch_one, reader.fetch_all

    async def counted_one(sql: str, values: dict[str, Any]) -> Any:
        statements.append(sql)
        return await fetch_one(sql, values)

    async def counted_all(sql: str, values: dict[str, Any]) -> Any:
        statements.append(sql)
        return await fetch_all(sql, values)

    def on_execute(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        statements.append(sql)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    monkeypatch.setattr(reader, "fetch_one", counted_one)
    monkeypatch.setattr(reader, "fetch_all", counted_all)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        monkeypatch.undo()


async def test_an_authenticated_request_with_roles_costs_one_statement(
    app: FastAPI,
    client: httpx.AsyncClient,
    manager: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The holder's permissions come with the lookup that authenticates them."""
    headers = bearer(manager["access_token"])
    with counted_statements(app, monkeypatch) as statements:
        me = await client.get("/api/users/me", headers=headers)
    assert me.status_code == 200
    assert len(statements) == 1
    assert "role_permissions" in statements[0]
    with counted_statements(app, monkeypatch) as statements:
        # users.read, from the role: no statement reads roles but the lookup.
        listed = await client.get("/api/users/", headers=headers)
    assert listed.status_code == 200
    assert [s for s in statements if "roles" in s] == [statements[0]]


async def test_a_role_removed_in_another_process_is_seen_at_the_next_request(
    app: FastAPI, client: httpx.AsyncClient, manager: dict[str, Any]
) -> None:
    """No cache to wait for: the database is asked on every request."""
    headers = bearer(manager["access_token"])
    assert (await client.get("/api/users/", headers=headers)).status_code == 200
    async with app.state.engine.begin() as connection:
        await connection.execute(text("DELETE FROM user_roles"))
    assert (await client.get("/api/users/", headers=headers)).status_code == 403
    again = await login(client, "manager@example.com")
    assert (
        await client.get("/api/users/", headers=bearer(again["access_token"]))
    ).status_code == 403
