"""The lists' statements as Postgres plans them, on a table big enough for the
planner to choose (40,000 items, 2,000 of them the user's, analysed), with every planner
setting at its default: each sort's first page and cursor page are read from
that sort's index (the owner's, or everyone's for an admin), never by a
sequential scan of items; an offset is found by an index-only scan; `q` uses the
trigram indexes; `tag` the GIN index on tags."""

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.policy import ItemScope
from app.schema.items import ItemListParams
from app.services.items import _list_sql, _list_values
from app.services.paging import SortOrder
from tests.conftest import register

ITEMS = 40_000
# One item in OWN_EVERY is the user's; the others are another user's.
OWN_EVERY = 20
FIELDS = ["name", "price", "created_at"]
SORTS = [prefix + field for field in FIELDS for prefix in ("", "-")]
SCOPES = [ItemScope.OWN, ItemScope.ALL]
FILL = """
INSERT INTO items (owner_id, name, description, price, tags, created_at, updated_at)
SELECT CASE WHEN n % :own_every = 0 THEN :owner ELSE :other END, format('Item %s', n),
       CASE WHEN n % 10 = 0 THEN format('Described item %s', n) END,
       1 + n % 997, ARRAY[format('t%s', n % 20)],
       now() - make_interval(secs => n), now() - make_interval(secs => n)
FROM generate_series(1, :count) AS n
"""


@pytest.fixture
async def owner_id(app: FastAPI, client: Any) -> int:
    ada = await register(client, "ada@example.com")
    grace = await register(client, "grace@example.com")
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(FILL),
            {
                "owner": ada["user"]["id"],
                "other": grace["user"]["id"],
                "own_every": OWN_EVERY,
                "count": ITEMS,
            },
        )
    async with app.state.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE items"))
    user_id: int = ada["user"]["id"]
    return user_id


async def plan(app: FastAPI, sql: str, values: dict[str, Any]) -> str:
    async with app.state.reader.connection() as connection:
        rows = await (await connection.execute("EXPLAIN " + sql, values)).fetchall()
    return "\n".join(row["QUERY PLAN"] for row in rows)


async def fetch_one(app: FastAPI, sql: str, values: dict[str, Any]) -> Any:
    async with app.state.reader.connection() as connection:
        row = await (await connection.execute(sql, values)).fetchone()
    assert row is not None
    return row


def statements(
    scope: ItemScope, sort: str, owner: int, **filters: Any
) -> tuple[Any, dict[str, Any]]:
    params = ItemListParams(sort=sort, **filters)
    values = _list_values(params)
    sql = _list_sql(scope=scope, filters=frozenset(values), order=SortOrder(sort))
    if scope is ItemScope.OWN:
        values["owner_id"] = owner
    return sql, values


def index_of(scope: ItemScope, field: str) -> str:
    return f"ix_items_owner_{field}" if scope is ItemScope.OWN else f"ix_items_{field}"


async def test_every_sorts_first_and_cursor_pages_read_its_index(
    app: FastAPI, owner_id: int
) -> None:
    for scope in SCOPES:
        for sort in SORTS:
            sql, values = statements(scope, sort, owner_id)
            index = f"using {index_of(scope, sort.removeprefix('-'))} on items"
            first = await plan(app, sql.first_page, {**values, "limit": 21})
            assert index in first, (scope, sort, first)
            assert "Seq Scan" not in first, (scope, sort, first)
            middle = await fetch_one(app, sql.key_at_offset, {**values, "offset": 1_000})
            after = {"after_key": middle[sort.removeprefix("-")], "after_id": middle["id"]}
            later = await plan(app, sql.page_after, {**values, "limit": 21, **after})
            assert index in later, (scope, sort, later)
            # The position is looked up in the index, not filtered row by row.
            assert "Index Cond" in later, (scope, sort, later)
            assert "ROW(" in later, (scope, sort, later)
            assert "Seq Scan" not in later, (scope, sort, later)


async def test_an_offset_is_found_by_an_index_only_scan(app: FastAPI, owner_id: int) -> None:
    for scope in SCOPES:
        for sort in SORTS:
            sql, values = statements(scope, sort, owner_id)
            found = await plan(app, sql.key_at_offset, {**values, "offset": 1_500})
            index = index_of(scope, sort.removeprefix("-"))
            assert f"Index Only Scan using {index} on items" in found or (
                f"Index Only Scan Backward using {index} on items" in found
            ), found


async def test_a_search_uses_the_trigram_indexes(app: FastAPI, owner_id: int) -> None:
    for scope in SCOPES:
        sql, values = statements(scope, "-created_at", owner_id, q="Item 1234")
        for statement, extra in (
            (sql.first_page, {"limit": 21}),
            (sql.bounded_count, {"count_limit": 10_001}),
        ):
            found = await plan(app, statement, {**values, **extra})
            assert "ix_items_name_trgm" in found, (scope, found)
            assert "ix_items_description_trgm" in found, (scope, found)
            assert "Seq Scan" not in found, (scope, found)


async def test_a_tag_is_found_without_a_sequential_scan(app: FastAPI, owner_id: int) -> None:
    sql, values = statements(ItemScope.ALL, "-created_at", owner_id, tag="t3")
    found = await plan(app, sql.first_page, {**values, "limit": 21})
    assert "Seq Scan" not in found, found
