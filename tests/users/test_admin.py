"""/api/users/ and /api/users/{id}: what an admin may do, and that nobody else may."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import (
    PASSWORD,
    assert_session_ended,
    bearer,
    count_rows,
    login,
    me,
    register,
)

LAST_SUPERUSER = "The last active superuser cannot be removed, demoted or deactivated"


async def admin_call(
    client: httpx.AsyncClient, method: str, token: str, path: str = "", **kwargs: Any
) -> httpx.Response:
    return await client.request(method, f"/api/users/{path}", headers=bearer(token), **kwargs)


async def test_admin_lists_users_in_a_paginated_envelope(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    token = admin_tokens["access_token"]
    await register(client, "grace@example.com")
    response = await admin_call(client, "GET", token)
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"items", "total", "total_exact", "limit", "offset", "next"}
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    # Default order: oldest account first.
    assert [user["email"] for user in page["items"]] == [
        "root@example.com",
        "ada@example.com",
        "grace@example.com",
    ]
    assert page["items"][1] == user_tokens["user"]
    assert "password" not in response.text

    second = (await admin_call(client, "GET", token, params={"limit": 1, "offset": 1})).json()
    assert [user["email"] for user in second["items"]] == ["ada@example.com"]
    assert (second["total"], second["limit"], second["offset"]) == (3, 1, 1)


@pytest.mark.parametrize("sort", ["email", "-email", "created_at", "-created_at"])
async def test_admin_pages_through_users_by_cursor(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any], sort: str
) -> None:
    token = admin_tokens["access_token"]
    for name in ("grace", "alan", "barbara"):
        await register(client, f"{name}@example.com")
    emails: list[str] = []
    params: dict[str, Any] = {"limit": 2, "sort": sort}
    while True:
        page = (await admin_call(client, "GET", token, params=params)).json()
        emails += [user["email"] for user in page["items"]]
        assert (page["total"], page["total_exact"]) == (5, True)
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert len(emails) == 5
    assert len(set(emails)) == 5
    if sort.endswith("email"):
        assert emails == sorted(emails, reverse=sort.startswith("-"))
    # A users cursor is no items cursor.
    refused = await client.get(
        "/api/items/", params={"cursor": params["cursor"]}, headers=bearer(token)
    )
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("email", ["ada", "bob", "root", "zed"]),
        ("-email", ["zed", "root", "bob", "ada"]),
        ("created_at", ["root", "zed", "ada", "bob"]),
        ("-created_at", ["bob", "ada", "zed", "root"]),
    ],
)
async def test_admin_sorts_users(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], sort: str, expected: list[str]
) -> None:
    for name in ("zed", "ada", "bob"):
        await register(client, f"{name}@example.com")
    response = await admin_call(client, "GET", admin_tokens["access_token"], params={"sort": sort})
    assert [user["email"].split("@")[0] for user in response.json()["items"]] == expected


@pytest.mark.parametrize(
    "params", [{"sort": "bogus"}, {"sort": "hashed_password"}, {"limit": 0}, {"offset": -1}]
)
async def test_invalid_user_list_parameter_is_422(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], params: dict[str, Any]
) -> None:
    response = await admin_call(client, "GET", admin_tokens["access_token"], params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", *params]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("GET", "{admin_id}", None),
        ("PATCH", "{admin_id}", {"is_active": False}),
        ("PATCH", "{own_id}", {"is_superuser": True}),
        ("DELETE", "{admin_id}", None),
        ("GET", "{admin_id}/sessions", None),
        ("DELETE", "{admin_id}/sessions", None),
        ("DELETE", "{own_id}/sessions", None),
    ],
)
async def test_a_non_admin_gets_403_on_every_admin_endpoint(
    client: httpx.AsyncClient,
    admin_tokens: dict[str, Any],
    user_tokens: dict[str, Any],
    method: str,
    path: str,
    body: Any,
) -> None:
    admin = (await me(client, admin_tokens["access_token"])).json()
    path = path.format(admin_id=admin["id"], own_id=user_tokens["user"]["id"])
    response = await admin_call(client, method, user_tokens["access_token"], path, json=body)
    assert response.status_code == 403
    assert response.json() == {"detail": "Not enough privileges"}
    assert (await me(client, admin_tokens["access_token"])).json() == admin
    assert (await me(client, user_tokens["access_token"])).json() == user_tokens["user"]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_admin_endpoints_without_a_bearer_are_401(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/api/users/1", json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_admin_reads_a_user(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    user = user_tokens["user"]
    response = await admin_call(client, "GET", admin_tokens["access_token"], str(user["id"]))
    assert response.status_code == 200
    assert response.json() == user


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PATCH", {"full_name": "x"}), ("DELETE", None)]
)
async def test_unknown_user_is_404(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], method: str, body: Any
) -> None:
    response = await admin_call(client, method, admin_tokens["access_token"], "999999", json=body)
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


async def test_non_integer_user_id_is_422(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    response = await admin_call(client, "GET", admin_tokens["access_token"], "abc")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


async def test_admin_edits_a_users_name_and_email(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    user_id = user_tokens["user"]["id"]
    response = await admin_call(
        client,
        "PATCH",
        admin_tokens["access_token"],
        str(user_id),
        json={"full_name": "Ada L.", "email": "Ada.L@Example.com"},
    )
    assert response.status_code == 200
    assert response.json() == {
        **user_tokens["user"],
        "full_name": "Ada L.",
        "email": "ada.l@example.com",
    }
    clash = await admin_call(
        client,
        "PATCH",
        admin_tokens["access_token"],
        str(user_id),
        json={"email": "ROOT@example.com"},
    )
    assert clash.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"is_active": None}, id="is_active-null"),
        pytest.param({"is_superuser": None}, id="is_superuser-null"),
        pytest.param({"email": None}, id="email-null"),
        pytest.param({"is_active": "maybe"}, id="is_active-not-bool"),
        pytest.param({"password": "x" * 10}, id="password"),
    ],
)
async def test_admin_patch_with_an_invalid_value_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    admin_tokens: dict[str, Any],
    user_tokens: dict[str, Any],
    body: dict[str, Any],
) -> None:
    user_id = str(user_tokens["user"]["id"])
    response = await admin_call(client, "PATCH", admin_tokens["access_token"], user_id, json=body)
    assert response.status_code == 422, response.text
    assert (await me(client, user_tokens["access_token"])).json() == user_tokens["user"]


async def test_deactivating_a_user_refuses_their_tokens_at_once_and_their_login(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    user_id = str(user_tokens["user"]["id"])
    assert (await me(client, user_tokens["access_token"])).status_code == 200
    response = await admin_call(
        client, "PATCH", admin_tokens["access_token"], user_id, json={"is_active": False}
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    await assert_session_ended(client, user_tokens)
    login_attempt = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert login_attempt.status_code == 401

    reactivated = await admin_call(
        client, "PATCH", admin_tokens["access_token"], user_id, json={"is_active": True}
    )
    assert reactivated.json()["is_active"] is True
    await login(client)


async def test_promoting_a_user_lets_them_use_admin_endpoints(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    assert (await admin_call(client, "GET", token)).status_code == 403
    response = await admin_call(
        client,
        "PATCH",
        admin_tokens["access_token"],
        str(user_tokens["user"]["id"]),
        json={"is_superuser": True},
    )
    assert response.status_code == 200
    assert response.json()["is_superuser"] is True
    listing = await admin_call(client, "GET", token)
    assert listing.status_code == 200
    assert listing.json()["total"] == 2


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "{admin_id}", {"is_superuser": False}),
        ("PATCH", "{admin_id}", {"is_active": False}),
        ("DELETE", "{admin_id}", None),
        ("DELETE", "me", None),
    ],
)
async def test_the_last_active_superuser_cannot_remove_themselves(
    client: httpx.AsyncClient,
    admin_tokens: dict[str, Any],
    user_tokens: dict[str, Any],
    method: str,
    path: str,
    body: Any,
) -> None:
    token = admin_tokens["access_token"]
    admin = (await me(client, token)).json()
    response = await admin_call(client, method, token, path.format(admin_id=admin["id"]), json=body)
    assert response.status_code == 409
    assert response.json() == {"detail": LAST_SUPERUSER}
    assert (await me(client, token)).json() == admin
    assert (await admin_call(client, "GET", token)).status_code == 200


async def test_an_inactive_superuser_does_not_count_as_another_admin(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    token = admin_tokens["access_token"]
    user_id = str(user_tokens["user"]["id"])
    await admin_call(client, "PATCH", token, user_id, json={"is_superuser": True})
    await admin_call(client, "PATCH", token, user_id, json={"is_active": False})
    response = await admin_call(client, "DELETE", token, "me")
    assert response.status_code == 409


async def test_with_another_active_superuser_an_admin_may_step_down(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    token = admin_tokens["access_token"]
    promoted = await admin_call(
        client, "PATCH", token, str(user_tokens["user"]["id"]), json={"is_superuser": True}
    )
    assert promoted.status_code == 200
    admin_id = (await me(client, token)).json()["id"]
    response = await admin_call(client, "PATCH", token, str(admin_id), json={"is_superuser": False})
    assert response.status_code == 200
    assert response.json()["is_superuser"] is False
    assert (await admin_call(client, "GET", token)).status_code == 403
    # Now ada is the last one.
    ada = user_tokens["access_token"]
    assert (await admin_call(client, "DELETE", ada, "me")).status_code == 409


async def test_admin_deletes_a_user_and_their_items(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_tokens: dict[str, Any],
    user_tokens: dict[str, Any],
) -> None:
    token = user_tokens["access_token"]
    user_id = user_tokens["user"]["id"]
    for name in ("a", "b", "c"):
        created = await client.post(
            "/api/items/", json={"name": name, "price": 1}, headers=bearer(token)
        )
        assert created.status_code == 201
    assert await count_rows(app, "items", user_id) == 3

    admin = admin_tokens["access_token"]
    response = await admin_call(client, "DELETE", admin, str(user_id))
    assert response.status_code == 204
    assert response.content == b""
    assert await count_rows(app, "items", user_id) == 0
    assert (await admin_call(client, "GET", admin, str(user_id))).status_code == 404
    assert (await me(client, token)).status_code == 401
    listing = (await admin_call(client, "GET", admin)).json()
    assert [user["email"] for user in listing["items"]] == ["root@example.com"]
    items = await client.get("/api/items/", headers=bearer(admin))
    assert items.json()["total"] == 0
