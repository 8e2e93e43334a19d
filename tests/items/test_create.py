"""POST /api/items/: what a new item looks like, and every input that is refused."""

import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import bearer

VALID: dict[str, Any] = {"name": "Espresso machine", "price": 199.99}


async def post_item(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await client.post("/api/items/", json=body, headers=bearer(token))


def detail_text(response: httpx.Response) -> str:
    """The 422 detail list flattened to one string, to look for a field or a message."""
    return json.dumps(response.json()["detail"])


async def test_create_returns_201_with_every_itemout_field(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    body = {
        "name": "  Espresso machine  ",
        "description": "Barely used.",
        "price": 199.99,
        "tax": 38,
        "tags": ["kitchen", "coffee"],
        "image": {"url": "https://example.com/espresso.jpg", "name": "Front view"},
    }
    response = await post_item(client, user_tokens["access_token"], body)
    assert response.status_code == 201, response.text
    item = response.json()
    assert set(item) == {
        "id",
        "owner_id",
        "name",
        "description",
        "price",
        "tax",
        "tags",
        "image",
        "total",
        "created_at",
        "updated_at",
    }
    assert isinstance(item["id"], int)
    assert item["owner_id"] == user_tokens["user"]["id"]
    assert item["name"] == "Espresso machine"
    assert item["description"] == "Barely used."
    assert item["price"] == 199.99
    assert item["tax"] == 38
    assert item["total"] == 237.99
    assert item["tags"] == ["kitchen", "coffee"]
    assert item["image"] == {"url": "https://example.com/espresso.jpg", "name": "Front view"}
    assert datetime.fromisoformat(item["created_at"]).tzinfo is not None
    assert datetime.fromisoformat(item["updated_at"]) >= datetime.fromisoformat(item["created_at"])

    read = await client.get(f"/api/items/{item['id']}", headers=bearer(user_tokens["access_token"]))
    assert read.json() == item


async def test_create_with_only_required_fields_defaults_the_rest(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await post_item(client, user_tokens["access_token"], {"name": "Mug", "price": 5})
    assert response.status_code == 201, response.text
    item = response.json()
    assert item["description"] is None
    assert item["tax"] is None
    assert item["tags"] == []
    assert item["image"] is None
    assert item["total"] == item["price"] == 5


@pytest.mark.parametrize(
    ("price", "tax", "total"),
    [
        (0.1, 0.2, 0.3),
        (19.99, None, 19.99),
        (19.99, 0, 19.99),
        ("0.10", "0.20", 0.3),
        (9999999999.99, 0.01, 10000000000.0),
    ],
)
async def test_money_is_exact_and_a_json_number(
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    price: Any,
    tax: Any,
    total: float,
) -> None:
    response = await post_item(
        client, user_tokens["access_token"], {"name": "Money", "price": price, "tax": tax}
    )
    assert response.status_code == 201, response.text
    # The raw text: 0.30000000000000004 or "0.3" (a string) would both be wrong.
    raw = json.loads(response.text, parse_float=str)
    assert raw["total"] == repr(total)
    item = response.json()
    for field in ("price", "total"):
        assert isinstance(item[field], float | int)
        assert not isinstance(item[field], bool)
    assert item["total"] == total
    assert item["price"] == float(price)


async def test_name_of_200_characters_is_accepted(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await post_item(client, user_tokens["access_token"], {**VALID, "name": "n" * 200})
    assert response.status_code == 201
    assert response.json()["name"] == "n" * 200


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"price": 0}, "price", "greater than 0"),
        ({"price": -1}, "price", "greater than 0"),
        ({"price": 1.001}, "price", "2 decimal places"),
        ({"price": "NaN"}, "price", "price"),
        ({"price": "Infinity"}, "price", "price"),
        ({"price": "-Infinity"}, "price", "price"),
        ({"price": "ten"}, "price", "price"),
        ({"price": None}, "price", "price"),
        ({"tax": -0.01}, "tax", "greater than or equal to 0"),
        ({"tax": 0.001}, "tax", "2 decimal places"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"name": "   "}, "name", "at least 1 character"),
        ({"name": "n" * 201}, "name", "at most 200 characters"),
        ({"tags": ["a", "a"]}, "tags", "tags must be unique"),
        ({"tags": ["a", " a "]}, "tags", "tags must be unique"),
        ({"tags": [""]}, "tags", "at least 1 character"),
        ({"image": {"url": "ftp://example.com/a.jpg", "name": "a"}}, "url", "URL scheme"),
        ({"image": {"url": "javascript:alert(1)", "name": "a"}}, "url", "url"),
        ({"image": {"url": "not a url", "name": "a"}}, "url", "url"),
        ({"image": {"url": "https://example.com/a.jpg"}}, "name", "required"),
        ({"id": 999}, "id", "Extra inputs are not permitted"),
        ({"owner_id": 1}, "owner_id", "Extra inputs are not permitted"),
    ],
)
async def test_invalid_input_is_422_naming_the_problem(
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    changes: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = await post_item(client, user_tokens["access_token"], {**VALID, **changes})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in error["loc"] for error in errors), errors
    assert message.lower() in detail_text(response).lower()


@pytest.mark.parametrize("missing", ["name", "price"])
async def test_missing_required_field_is_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], missing: str
) -> None:
    body = {key: value for key, value in VALID.items() if key != missing}
    response = await post_item(client, user_tokens["access_token"], body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", missing]
    assert error["type"] == "missing"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_json_number_literal_is_422(
    app: FastAPI, user_tokens: dict[str, Any], literal: str
) -> None:
    # Python's json module accepts these non-standard literals. Answer as a server
    # would (no exception re-raised into the test): a 500 here is a bug.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
        response = await raw.post(
            "/api/items/",
            content=f'{{"name": "x", "price": {literal}}}',
            headers={**bearer(user_tokens["access_token"]), "Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text


async def test_smuggled_owner_id_creates_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    response = await post_item(client, token, {**VALID, "owner_id": 1, "id": 1})
    assert response.status_code == 422
    listing = await client.get("/api/items/", headers=bearer(admin_tokens["access_token"]))
    assert listing.json()["total"] == 0


async def test_image_url_longer_than_2048_characters_is_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    url = "https://example.com/" + "a" * 2048
    response = await post_item(
        client, user_tokens["access_token"], {**VALID, "image": {"url": url, "name": "a"}}
    )
    assert response.status_code == 422
    assert "2048" in detail_text(response)


@pytest.mark.parametrize("headers", [{}, bearer("not-a-jwt"), {"Authorization": "Basic abc"}])
async def test_create_without_a_valid_bearer_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/api/items/", json=VALID, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)
