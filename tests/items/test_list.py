"""GET /api/items/: the envelope, paging, sorting, filters and who sees what."""

from typing import Any

import httpx
import pytest

from tests.conftest import bearer, create_item, register


async def list_items(client: httpx.AsyncClient, token: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/items/", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


async def test_empty_list_is_an_envelope_with_default_paging(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    page = await list_items(client, user_tokens["access_token"])
    assert page == {
        "items": [],
        "total": 0,
        "total_exact": True,
        "limit": 20,
        "offset": 0,
        "next": None,
    }


async def test_default_page_holds_20_of_more_and_total_counts_all(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for number in range(21):
        await create_item(client, token, f"item {number:02}")
    page = await list_items(client, token)
    assert len(page["items"]) == 20
    assert page["total"] == 21
    assert (page["limit"], page["offset"]) == (20, 0)
    # The default order is newest first.
    assert page["items"][0]["name"] == "item 20"
    assert {"id", "owner_id", "total", "created_at", "updated_at"} <= set(page["items"][0])


async def test_limit_and_offset_page_through_the_matches(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for number in range(25):
        await create_item(client, token, f"item {number:02}")
    last = await list_items(client, token, limit=10, offset=20, sort="name")
    assert names(last) == [f"item {number:02}" for number in range(20, 25)]
    assert (last["total"], last["limit"], last["offset"]) == (25, 10, 20)
    beyond = await list_items(client, token, limit=10, offset=30)
    assert beyond["items"] == []
    assert beyond["total"] == 25


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"offset": -1},
        {"sort": "bogus"},
        {"sort": "owner_id"},
        {"sort": "--price"},
        {"min_price": -1},
        {"min_price": "cheap"},
        {"min_price": "NaN"},
        {"max_price": "Infinity"},
        {"q": "q" * 201},
        {"q": ""},
    ],
)
async def test_invalid_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], params: dict[str, Any]
) -> None:
    response = await client.get(
        "/api/items/", params=params, headers=bearer(user_tokens["access_token"])
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", *params]


async def test_limit_100_is_accepted(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    page = await list_items(client, user_tokens["access_token"], limit=100)
    assert page["limit"] == 100


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["apple", "banana", "cherry"]),
        ("-name", ["cherry", "banana", "apple"]),
        ("price", ["banana", "cherry", "apple"]),
        ("-price", ["apple", "cherry", "banana"]),
        ("created_at", ["cherry", "apple", "banana"]),
        ("-created_at", ["banana", "apple", "cherry"]),
    ],
)
async def test_sort_orders_by_the_field_and_direction(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], sort: str, expected: list[str]
) -> None:
    token = user_tokens["access_token"]
    # Created in this order; prices chosen so that no two orders coincide.
    await create_item(client, token, "cherry", 5)
    await create_item(client, token, "apple", 30)
    await create_item(client, token, "banana", 2.5)
    assert names(await list_items(client, token, sort=sort)) == expected


async def test_price_sort_is_numeric_not_textual(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for price in (100, 9, 20.5):
        await create_item(client, token, f"costs {price}", price)
    page = await list_items(client, token, sort="price")
    assert [item["price"] for item in page["items"]] == [9, 20.5, 100]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("espresso", {"Espresso machine", "Grinder"}),
        ("MACHINE", {"Espresso machine", "Bread Machine"}),
        ("%", {"100% cotton"}),
        ("_", {"snake_case"}),
        ("\\", {"back\\slash"}),
        ("nothing like it", set()),
    ],
)
async def test_q_matches_name_or_description_case_insensitively_and_literally(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], q: str, expected: set[str]
) -> None:
    token = user_tokens["access_token"]
    await create_item(client, token, "Espresso machine")
    await create_item(client, token, "Grinder", description="For ESPRESSO beans")
    await create_item(client, token, "Bread Machine")
    await create_item(client, token, "100% cotton")
    await create_item(client, token, "100 cotton")
    await create_item(client, token, "snake_case")
    await create_item(client, token, "snakeXcase")
    await create_item(client, token, "back\\slash")
    page = await list_items(client, token, q=q)
    assert set(names(page)) == expected
    assert page["total"] == len(expected)


async def test_tag_filter_keeps_items_with_that_tag(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    await create_item(client, token, "mug", tags=["kitchen", "coffee"])
    await create_item(client, token, "pan", tags=["kitchen"])
    await create_item(client, token, "book", tags=["reading"])
    await create_item(client, token, "rock")
    assert set(names(await list_items(client, token, tag="kitchen"))) == {"mug", "pan"}
    assert names(await list_items(client, token, tag="coffee")) == ["mug"]
    assert names(await list_items(client, token, tag="kitch")) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"min_price": 10}, {"10", "20", "30"}),
        ({"max_price": 20}, {"5", "10", "20"}),
        ({"min_price": 10, "max_price": 20}, {"10", "20"}),
        ({"min_price": "9.99", "max_price": "10.00"}, {"10"}),
        ({"min_price": 20, "max_price": 20}, {"20"}),
        ({"min_price": 31}, set()),
    ],
)
async def test_price_bounds_are_inclusive(
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    params: dict[str, Any],
    expected: set[str],
) -> None:
    token = user_tokens["access_token"]
    for price in (5, 10, 20, 30):
        await create_item(client, token, str(price), price)
    page = await list_items(client, token, **params)
    assert set(names(page)) == expected
    assert page["total"] == len(expected)


async def test_min_price_above_max_price_is_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.get(
        "/api/items/",
        params={"min_price": 20, "max_price": 10},
        headers=bearer(user_tokens["access_token"]),
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "max_price"]
    assert "min_price" in error["msg"]


async def test_filters_combine_and_total_counts_only_matches(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    await create_item(client, token, "red mug", 8, tags=["kitchen"])
    await create_item(client, token, "blue mug", 12, tags=["kitchen"])
    await create_item(client, token, "mug poster", 12, tags=["art"])
    await create_item(client, token, "red pan", 12, tags=["kitchen"])
    page = await list_items(client, token, q="mug", tag="kitchen", min_price=10, limit=1)
    assert names(page) == ["blue mug"]
    assert page["total"] == 1


async def test_a_user_lists_only_their_own_items(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    other = await register(client, "grace@example.com")
    await create_item(client, user_tokens["access_token"], "ada's")
    await create_item(client, other["access_token"], "grace's")
    ada_page = await list_items(client, user_tokens["access_token"])
    assert names(ada_page) == ["ada's"]
    assert ada_page["total"] == 1
    assert ada_page["items"][0]["owner_id"] == user_tokens["user"]["id"]
    grace_page = await list_items(client, other["access_token"], q="ada")
    assert grace_page == {
        "items": [],
        "total": 0,
        "total_exact": True,
        "limit": 20,
        "offset": 0,
        "next": None,
    }


async def test_an_admin_lists_everyones_items(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    other = await register(client, "grace@example.com")
    await create_item(client, user_tokens["access_token"], "ada's")
    await create_item(client, other["access_token"], "grace's")
    await create_item(client, admin_tokens["access_token"], "root's")
    page = await list_items(client, admin_tokens["access_token"], sort="name")
    assert names(page) == ["ada's", "grace's", "root's"]
    assert page["total"] == 3
    assert len({item["owner_id"] for item in page["items"]}) == 3


async def test_listing_without_a_valid_bearer_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("garbage")):
        response = await client.get("/api/items/", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
