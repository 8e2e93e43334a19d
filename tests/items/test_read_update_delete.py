"""GET, PUT, PATCH and DELETE /api/items/{id}: ownership, replacement and partial update."""

from typing import Any

import httpx
import pytest

from tests.conftest import bearer, register
from tests.conftest import create_item as create_full_item

FULL: dict[str, Any] = {
    "name": "Espresso machine",
    "description": "Barely used.",
    "price": 199.99,
    "tax": 38,
    "tags": ["kitchen", "coffee"],
    "image": {"url": "https://example.com/espresso.jpg", "name": "Front view"},
}


async def create_item(client: httpx.AsyncClient, token: str, **fields: Any) -> dict[str, Any]:
    return await create_full_item(client, token, **{**FULL, **fields})


async def read_item(client: httpx.AsyncClient, token: str, item_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/items/{item_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def call(
    client: httpx.AsyncClient, method: str, token: str, item_id: int | str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"/api/items/{item_id}", json=body, headers=bearer(token))


async def test_owner_reads_their_item(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    item = await create_item(client, user_tokens["access_token"])
    assert await read_item(client, user_tokens["access_token"], item["id"]) == item


async def test_unknown_item_is_404(client: httpx.AsyncClient, user_tokens: dict[str, Any]) -> None:
    response = await call(client, "GET", user_tokens["access_token"], 999_999)
    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("PUT", {"name": "stolen", "price": 1}),
        ("PATCH", {"name": "stolen"}),
        ("DELETE", None),
    ],
)
async def test_another_users_item_is_404_and_stays_unchanged(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], method: str, body: Any
) -> None:
    item = await create_item(client, user_tokens["access_token"])
    intruder = await register(client, "mallory@example.com")
    response = await call(client, method, intruder["access_token"], item["id"], body)
    assert response.status_code == 404
    # Indistinguishable from an item that does not exist.
    assert response.json() == {"detail": "Item not found"}
    assert await read_item(client, user_tokens["access_token"], item["id"]) == item


async def test_an_admin_reads_and_patches_anyones_item(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    item = await create_item(client, user_tokens["access_token"])
    admin = admin_tokens["access_token"]
    assert await read_item(client, admin, item["id"]) == item
    response = await call(client, "PATCH", admin, item["id"], {"name": "moderated"})
    assert response.status_code == 200
    assert response.json()["owner_id"] == user_tokens["user"]["id"]
    assert response.json()["name"] == "moderated"


async def test_put_replaces_every_field_and_clears_those_left_out(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    response = await call(client, "PUT", token, item["id"], {"name": "Kettle", "price": 25.5})
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["name"] == "Kettle"
    assert replaced["price"] == 25.5
    assert replaced["description"] is None
    assert replaced["tax"] is None
    assert replaced["tags"] == []
    assert replaced["image"] is None
    assert replaced["total"] == 25.5
    assert (replaced["id"], replaced["owner_id"]) == (item["id"], item["owner_id"])
    assert replaced["created_at"] == item["created_at"]
    assert replaced["updated_at"] > item["updated_at"]
    assert await read_item(client, token, item["id"]) == replaced


async def test_put_with_every_field_sets_them_all(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token, name="Old", tags=[], image=None, tax=None)
    new = {**FULL, "name": "New", "price": 0.1, "tax": 0.2, "tags": ["x"]}
    response = await call(client, "PUT", token, item["id"], new)
    assert response.status_code == 200
    replaced = response.json()
    assert {key: replaced[key] for key in new} == new
    assert replaced["total"] == 0.3


@pytest.mark.parametrize(
    "body",
    [
        {"price": 10},
        {"name": "no price"},
        {"name": "x", "price": 10, "owner_id": 2},
        {"name": "x", "price": 10, "id": 2},
        {"name": "x", "price": 0},
    ],
)
async def test_put_with_missing_or_invalid_fields_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], body: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    response = await call(client, "PUT", token, item["id"], body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert await read_item(client, token, item["id"]) == item


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Renamed"},
        {"description": "Like new."},
        {"price": 150},
        {"tax": 0},
        {"tags": ["sale"]},
        {"image": {"url": "http://example.com/b.png", "name": "Back"}},
        {"name": "Both", "price": 1.25},
    ],
)
async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], changes: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    response = await call(client, "PATCH", token, item["id"], changes)
    assert response.status_code == 200, response.text
    patched = response.json()
    for key, value in item.items():
        if key in changes:
            assert patched[key] == changes[key]
        elif key not in {"total", "updated_at"}:
            assert patched[key] == value, key
    assert patched["total"] == round(patched["price"] + (patched["tax"] or 0), 2)
    assert patched["updated_at"] > item["updated_at"]
    assert await read_item(client, token, item["id"]) == patched


@pytest.mark.parametrize("field", ["tax", "description", "image"])
async def test_patch_null_clears_an_optional_field(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], field: str
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    response = await call(client, "PATCH", token, item["id"], {field: None})
    assert response.status_code == 200
    patched = response.json()
    assert patched[field] is None
    assert {k: v for k, v in patched.items() if k not in {field, "total", "updated_at"}} == {
        k: v for k, v in item.items() if k not in {field, "total", "updated_at"}
    }
    assert patched["total"] == (199.99 if field == "tax" else 237.99)
    assert (await read_item(client, token, item["id"]))[field] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"name": None},
        {"price": None},
        {"tags": None},
        {"name": "  "},
        {"price": -5},
        {"tags": ["a", "a"]},
        {"colour": "red"},
        {"owner_id": 2},
    ],
)
async def test_patch_with_invalid_or_unknown_field_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], changes: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    response = await call(client, "PATCH", token, item["id"], changes)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][:2] == ["body", next(iter(changes))]
    assert await read_item(client, token, item["id"]) == item


async def test_patch_with_empty_body_changes_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    response = await call(client, "PATCH", token, item["id"], {})
    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
        k: v for k, v in item.items() if k != "updated_at"
    }


async def test_delete_is_204_then_the_item_is_gone(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    item = await create_item(client, token)
    kept = await create_item(client, token, name="Kept")
    response = await call(client, "DELETE", token, item["id"])
    assert response.status_code == 204
    assert response.content == b""
    assert (await call(client, "GET", token, item["id"])).status_code == 404
    assert (await call(client, "DELETE", token, item["id"])).status_code == 404
    listing = await client.get("/api/items/", headers=bearer(token))
    assert [listed["id"] for listed in listing.json()["items"]] == [kept["id"]]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_non_integer_id_is_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], method: str
) -> None:
    body = {"name": "x", "price": 1} if method in {"PUT", "PATCH"} else None
    response = await call(client, method, user_tokens["access_token"], "abc", body)
    assert response.status_code == 422
    assert any(error["loc"] == ["path", "item_id"] for error in response.json()["detail"])


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("headers", [{}, bearer("garbage"), {"Authorization": "Bearer "}])
async def test_missing_or_invalid_bearer_is_401(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], method: str, headers: dict[str, str]
) -> None:
    item = await create_item(client, user_tokens["access_token"])
    body = {"name": "x", "price": 1} if method in {"PUT", "PATCH"} else None
    response = await client.request(method, f"/api/items/{item['id']}", json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)
    assert await read_item(client, user_tokens["access_token"], item["id"]) == item


async def test_refresh_token_is_not_accepted_as_bearer(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.get("/api/items/", headers=bearer(user_tokens["refresh_token"]))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
