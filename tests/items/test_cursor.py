"""GET /api/items/ by cursor: `next` walks every match once in each sort (ties
included), stays right while rows come and go, ends with null, and is refused
(400, with a detail) when garbled or made for another list; `total` is exact up to
LIST_EXACT_TOTAL_LIMIT and an estimate (`total_exact: false`) beyond."""

import base64
import dataclasses
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.services import cursors, paging
from app.services import items as items_service
from app.services.paging import ListSQL
from tests.conftest import bearer, create_item, register

SORTS = ["name", "-name", "price", "-price", "created_at", "-created_at"]


async def get_page(
    client: httpx.AsyncClient, token: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/items/", params=params, headers=bearer(token))
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def walk(
    client: httpx.AsyncClient, token: str, *, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Every page from the first, following `next` until it is null."""
    pages = []
    cursor = None
    while True:
        extra: dict[str, str] = {} if cursor is None else {"cursor": cursor}
        status, page = await get_page(client, token, limit=limit, **params, **extra)
        assert status == 200, page
        pages.append(page)
        cursor = page["next"]
        if cursor is None:
            return pages


def ids(pages: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for page in pages for item in page["items"]]


def sort_key(sort: str) -> Any:
    field = sort.removeprefix("-")

    def key(item: dict[str, Any]) -> Any:
        value = Decimal(str(item[field])) if field == "price" else item[field]
        return (value, item["id"])

    return key


@pytest.fixture
def exact_total_limit(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> int:
    """LIST_EXACT_TOTAL_LIMIT lowered to 5 for the app under test."""
    lowered = app.state.settings.model_copy(update={"LIST_EXACT_TOTAL_LIMIT": 5})
    # setitem: State keeps its attributes in a dict, which setattr could not restore.
    monkeypatch.setitem(app.state._state, "settings", lowered)
    return 5


async def create_with_ties(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    """Eleven items, several sharing a name, several a price."""
    created = []
    for number in range(11):
        name = f"item {number % 4}"  # 4 names, each 2-3 times
        price = [5, 5, 5, 7, 7, 9][number % 6]
        created.append(await create_item(client, token, name, price))
    return created


@pytest.mark.parametrize("sort", SORTS)
async def test_next_walks_every_item_once_in_order_ties_included(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], sort: str
) -> None:
    token = user_tokens["access_token"]
    created = await create_with_ties(client, token)
    pages = await walk(client, token, limit=3, sort=sort)
    assert [len(page["items"]) for page in pages] == [3, 3, 3, 2]
    walked = [item for page in pages for item in page["items"]]
    assert sorted(ids(pages)) == sorted(item["id"] for item in created)
    # Sorted by the field, then by id, both in the direction asked for.
    assert walked == sorted(walked, key=sort_key(sort), reverse=sort.startswith("-"))
    assert all(page["total"] == 11 and page["total_exact"] for page in pages)
    assert pages[-1]["next"] is None


async def test_a_full_last_page_has_no_next(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for number in range(4):
        await create_item(client, token, f"item {number}")
    pages = await walk(client, token, limit=2)
    assert [len(page["items"]) for page in pages] == [2, 2]
    assert pages[-1]["next"] is None


async def test_rows_inserted_or_deleted_between_pages_neither_repeat_nor_skip_others(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    created = [await create_item(client, token, f"item {number:02}") for number in range(10)]
    status, first = await get_page(client, token, limit=4, sort="name")
    assert [item["name"] for item in first["items"]] == [f"item {n:02}" for n in range(4)]
    # Before the cursor: a new first item, and a deleted one already seen.
    await create_item(client, token, "item 00a")
    await client.delete(f"/api/items/{created[0]['id']}", headers=bearer(token))
    # After it: one deleted, one added.
    await client.delete(f"/api/items/{created[5]['id']}", headers=bearer(token))
    await create_item(client, token, "item 07a")
    rest: list[str] = []
    cursor = first["next"]
    while cursor is not None:
        status, page = await get_page(client, token, limit=4, sort="name", cursor=cursor)
        assert status == 200, page
        rest += [item["name"] for item in page["items"]]
        cursor = page["next"]
    assert rest == ["item 04", "item 06", "item 07", "item 07a", "item 08", "item 09"]


async def test_a_cursor_keeps_the_filters_it_was_made_with(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for number in range(6):
        tags = ["red"] if number % 2 else ["blue"]
        await create_item(client, token, f"lamp {number}", 10 + number, tags=tags)
    await create_item(client, token, "chair", 12, tags=["red"])
    pages = await walk(client, token, limit=1, q="lamp", tag="red", min_price=11, sort="price")
    assert [item["name"] for page in pages for item in page["items"]] == [
        "lamp 1",
        "lamp 3",
        "lamp 5",
    ]


@pytest.mark.parametrize(
    ("changed", "value"),
    [("sort", "price"), ("q", "other"), ("tag", "red"), ("min_price", "1"), ("max_price", "99")],
)
async def test_a_cursor_used_with_another_sort_or_filter_is_a_400(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], changed: str, value: str
) -> None:
    token = user_tokens["access_token"]
    for number in range(3):
        await create_item(client, token, f"item {number}")
    _, first = await get_page(client, token, limit=1, sort="name")
    params = {"limit": 1, "sort": "name", changed: value, "cursor": first["next"]}
    status, body = await get_page(client, token, **params)
    assert status == 400
    assert body == {"detail": cursors.FOREIGN}


async def test_another_users_cursor_is_a_400_and_an_admins_too(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for number in range(3):
        await create_item(client, token, f"item {number}")
    _, first = await get_page(client, token, limit=1)
    other = await register(client, "grace@example.com")
    for stranger in (other["access_token"], admin_tokens["access_token"]):
        status, body = await get_page(client, stranger, limit=1, cursor=first["next"])
        assert (status, body) == (400, {"detail": cursors.FOREIGN})
    # The admin's own cursor walks everyone's items.
    admin_pages = await walk(client, admin_tokens["access_token"], limit=2)
    assert len(ids(admin_pages)) == 3


def forged(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "a",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        forged({"not": "a list"}),
        forged([2, "x", "a", 1]),  # another version
        forged([1, "x", "a"]),
        forged([1, "x", "a", "1"]),
        forged([1, "x", "a", 0]),
        forged([1, "x", "a", 2**31]),
        forged([1, "x", "a", True]),
        forged([1, "x", 5, 1]),
    ],
)
async def test_a_garbled_cursor_is_a_400_with_a_detail(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], cursor: str
) -> None:
    status, body = await get_page(client, user_tokens["access_token"], cursor=cursor)
    assert (status, body) == (400, {"detail": cursors.MALFORMED})


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("price", "cheap"),
        ("price", "NaN"),
        ("price", "1e999999"),
        ("created_at", "yesterday"),
        ("created_at", "2026-01-01T00:00:00"),  # no time zone
        ("name", "a\x00b"),
        ("name", "x" * 1001),
    ],
)
async def test_a_cursor_whose_key_is_not_of_its_sort_is_a_400(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], sort: str, key: str
) -> None:
    """Well formed and made for this list, but its key cannot be a position in it."""
    owner = user_tokens["user"]["id"]
    fingerprint = cursors.fingerprint(list_name="items", sort=sort, values={"owner_id": owner})
    cursor = forged([cursors.VERSION, fingerprint, key, 1])
    status, body = await get_page(client, user_tokens["access_token"], sort=sort, cursor=cursor)
    assert (status, body) == (400, {"detail": cursors.MALFORMED})


async def test_cursor_with_offset_or_empty_or_too_long_is_a_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for params in ({"cursor": "abc", "offset": 1}, {"cursor": ""}, {"cursor": "a" * 2001}):
        status, body = await get_page(client, token, **params)
        assert status == 422, (params, body)
    status, body = await get_page(client, token, cursor="abc", offset=1)
    assert "not both" in body["detail"][0]["msg"]


async def test_offset_still_pages_and_counts(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    for number in range(7):
        await create_item(client, token, f"item {number}", price=5)  # all tied on price
    by_cursor = ids(await walk(client, token, limit=3, sort="-price"))
    by_offset = []
    for offset in (0, 3, 6):
        _, page = await get_page(client, token, limit=3, offset=offset, sort="-price")
        assert (page["total"], page["total_exact"]) == (7, True)
        assert (page["next"] is None) == (offset == 6)
        by_offset += [item["id"] for item in page["items"]]
    assert by_offset == by_cursor
    # A cursor from an offset's page goes on from there.
    _, middle = await get_page(client, token, limit=3, offset=3, sort="-price")
    _, after = await get_page(client, token, limit=3, sort="-price", cursor=middle["next"])
    assert [item["id"] for item in after["items"]] == by_cursor[6:]


async def test_total_is_exact_up_to_the_bound_and_an_estimate_beyond(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], exact_total_limit: int
) -> None:
    token = user_tokens["access_token"]
    for number in range(5):
        await create_item(client, token, f"item {number}", tags=["five"] if number else [])
    _, page = await get_page(client, token, limit=2)
    assert (page["total"], page["total_exact"]) == (5, True)
    _, page = await get_page(client, token, limit=2, tag="five")
    assert (page["total"], page["total_exact"]) == (4, True)
    await create_item(client, token, "item 5")
    status, page = await get_page(client, token, limit=2)
    assert status == 200
    # Beyond the bound: never below what was counted (the bound and one more).
    assert page["total_exact"] is False
    assert page["total"] >= exact_total_limit + 1
    _, second = await get_page(client, token, limit=2, cursor=page["next"])
    assert second["total_exact"] is False
    # A page that reaches the end from the start counts itself, whatever the bound.
    _, whole = await get_page(client, token, limit=100)
    assert (whole["total"], whole["total_exact"]) == (6, True)


async def test_a_count_past_its_deadline_gives_way_to_the_estimate(
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A filtered list's count slower than LIST_COUNT_TIMEOUT (here: one that
    sleeps) is cancelled: the page comes back, its total the estimate, never below
    what it shows."""
    token = user_tokens["access_token"]
    for number in range(3):
        await create_item(client, token, f"item {number}", tags=["lamp"])
    real = items_service._list_sql

    def slow_count(**shape: Any) -> ListSQL:
        sql = real(**shape)
        return dataclasses.replace(
            sql, bounded_count="SELECT count(*) AS count FROM (SELECT pg_sleep(2)) AS slow"
        )

    monkeypatch.setattr(items_service, "_list_sql", slow_count)
    started = time.monotonic()
    status, page = await get_page(client, token, limit=2, tag="lamp")
    assert status == 200
    assert time.monotonic() - started < 1
    assert page["total_exact"] is False
    assert page["total"] >= 3  # the two shown, and the one `next` promises
    assert len(page["items"]) == 2


async def test_a_search_finds_matches_inside_and_beyond_its_first_window(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`q` is tried on the next SCAN_ROWS rows of the sort first (here 3): a page
    found there, a window that reaches the end, and matches beyond the window all
    come back in order, each once."""
    monkeypatch.setattr(paging, "SCAN_ROWS", 3)
    token = user_tokens["access_token"]
    names = [
        f"{'lamp' if number in {0, 1, 2, 7, 11} else 'chair'} {number:02}" for number in range(13)
    ]
    for name in names:
        await create_item(client, token, name)
    expected = [name for name in names if name.startswith("lamp")]
    for limit in (1, 2, 5):
        pages = await walk(client, token, limit=limit, q="LAMP", sort="name")
        assert [item["name"] for page in pages for item in page["items"]] == expected
        assert all((page["total"], page["total_exact"]) == (5, True) for page in pages)
    newest_first = await walk(client, token, limit=2, q="lamp")
    assert [item["name"] for page in newest_first for item in page["items"]] == expected[::-1]
