"""The list of all items at a deep offset, by rank anchors (app/services/
item_ranks.py): whatever changed since the anchors were built, the row they find
at an offset is the one a plain OFFSET finds, in every sort; a change committed
while a build runs is counted; the sweep builds when due; the HTTP list answers
the same pages with and without anchors."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.config import Settings
from app.database.reads import ReadConnection
from app.services import item_ranks
from app.services.maintenance import sweep
from app.services.paging import SortOrder
from tests.conftest import app_with, bearer

SORTS = [
    SortOrder(spec) for spec in ("name", "-name", "price", "-price", "created_at", "-created_at")
]
SPACING = 7
# A row's sort key and id.
Key = tuple[Any, int]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Few distinct values: many ties, broken by the id.
NAMES = [f"item {letter}" for letter in "abcdefghij"] + ["Item B", "item  a", "émile"]


async def execute(app: FastAPI, sql: str, values: dict[str, Any] | None = None) -> Any:
    async with app.state.engine.begin() as connection:
        return await connection.execute(text(sql), values or {})


async def owner(app: FastAPI) -> int:
    result = await execute(
        app,
        "INSERT INTO users (email, hashed_password) VALUES ('owner@example.com', 'x') RETURNING id",
    )
    user_id: int = result.scalar_one()
    return user_id


def random_item(rng: random.Random, owner_id: int) -> dict[str, Any]:
    return {
        "owner_id": owner_id,
        "name": rng.choice(NAMES),
        "price": Decimal(rng.randint(1, 40)) / 4,
        "created_at": EPOCH + timedelta(minutes=rng.randint(0, 300)),
    }


INSERT = (
    "INSERT INTO items (owner_id, name, price, created_at)"
    " VALUES (:owner_id, :name, :price, :created_at)"
)


async def seed(app: FastAPI, rng: random.Random, owner_id: int, count: int) -> None:
    async with app.state.engine.begin() as connection:
        await connection.execute(text(INSERT), [random_item(rng, owner_id) for _ in range(count)])


async def change_randomly(app: FastAPI, rng: random.Random, owner_id: int, count: int) -> None:
    """`count` random inserts, deletes and updates of a sort column (or two), some
    in one statement each, some several to a statement."""
    async with app.state.engine.begin() as connection:
        ids = list((await connection.scalars(text("SELECT id FROM items"))).all())
        for _ in range(count):
            kind = rng.choice(["insert", "insert many", "delete", "delete many", "update", "touch"])
            if kind == "insert":
                await connection.execute(text(INSERT), random_item(rng, owner_id))
            elif kind == "insert many":
                await connection.execute(
                    text(INSERT), [random_item(rng, owner_id) for _ in range(rng.randint(2, 5))]
                )
            elif kind == "delete" and ids:
                await connection.execute(
                    text("DELETE FROM items WHERE id = :id"),
                    {"id": ids.pop(rng.randrange(len(ids)))},
                )
            elif kind == "delete many":
                low = rng.randint(0, max(ids, default=0))
                await connection.execute(
                    text("DELETE FROM items WHERE id BETWEEN :low AND :high"),
                    {"low": low, "high": low + rng.randint(1, 4)},
                )
            elif kind == "update" and ids:
                values = random_item(rng, owner_id)
                column = rng.choice(["name", "price", "created_at", "name, price"])
                assignments = ", ".join(f"{name} = :{name}" for name in column.split(", "))
                await connection.execute(
                    text(f"UPDATE items SET {assignments} WHERE id = :id"),  # noqa: S608
                    {**values, "id": rng.choice(ids)},
                )
            elif kind == "touch" and ids:  # no sort column changes: nothing logged
                await connection.execute(
                    text("UPDATE items SET description = 'touched', name = name WHERE id = :id"),
                    {"id": rng.choice(ids)},
                )


async def rebuild(app: FastAPI, spacing: int = SPACING) -> item_ranks.Rebuilt:
    async with app.state.session_factory() as db:
        built = await item_ranks.rebuild(db=db, spacing=spacing)
    assert built is not None
    return built


def plain_sql(order: SortOrder) -> str:
    """The row at `offset` the slow way: OFFSET in the sort's direction."""
    direction = "DESC" if order.descending else "ASC"
    return (
        f"SELECT {order.field}, id FROM items"  # noqa: S608
        f" ORDER BY {order.field} {direction}, id {direction} OFFSET %(offset)s LIMIT 1"
    )


async def plain(connection: ReadConnection, order: SortOrder, offset: int) -> Key | None:
    found = await (await connection.execute(plain_sql(order), {"offset": offset})).fetchone()
    return None if found is None else (found[order.field], found["id"])


async def anchored(
    connection: ReadConnection, order: SortOrder, offset: int, max_changes: int = 100_000
) -> Key | None:
    """The row the anchors find at `offset`; None past either end."""
    rows = await (
        await connection.execute(
            item_ranks.key_at_offset_sql(order), {"offset": offset, "max_changes": max_changes}
        )
    ).fetchall()
    assert len(rows) == 1, "the anchors are there, the log is under its bound"
    found = rows[0]
    if not 0 <= found["position"] < found["total"]:
        assert found["id"] is None
        return None
    assert found["id"] is not None, found
    # The walk is short: from an anchor, less than the spacing plus the changes
    # logged; from the first row (no anchor counted low enough), as short.
    logged = await (await connection.execute("SELECT count(*) FROM item_rank_changes")).fetchone()
    assert logged is not None
    walk = found["position"] if found["skip"] is None else found["skip"]
    assert walk < SPACING + logged["count"], (order.spec, offset, found)
    return found[order.field], found["id"]


async def count_items(connection: ReadConnection) -> int:
    counted = await (await connection.execute("SELECT count(*) FROM items")).fetchone()
    assert counted is not None
    count: int = counted["count"]
    return count


def offsets_to_check(rng: random.Random, total: int) -> list[int]:
    around_anchors = [
        position + step
        for position in range(0, total + 2 * SPACING, SPACING * 13)
        for step in (-1, 0, 1)
    ]
    ends = [0, 1, total - 2, total - 1, total, total + 1, total + 50]
    return sorted(
        {n for n in [*ends, *around_anchors, *rng.sample(range(total), min(total, 40))] if n >= 0}
    )


async def assert_anchors_agree(app: FastAPI, rng: random.Random) -> None:
    """In every sort, at the ends, around anchors and at random offsets (the
    table does not change meanwhile)."""
    async with app.state.reader.connection() as connection:
        total = await count_items(connection)
        for order in SORTS:
            for offset in offsets_to_check(rng, total):
                expected = await plain(connection, order, offset)
                found = await anchored(connection, order, offset)
                assert found == expected, (order.spec, offset, total)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(21)  # noqa: S311 (a repeatable test, not a secret)


async def test_anchors_answer_as_offset_does_after_random_changes(
    app: FastAPI, rng: random.Random
) -> None:
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 2_000)
    built = await rebuild(app)
    assert built.rows == 2_000
    await assert_anchors_agree(app, rng)  # no change logged
    for _ in range(3):
        await change_randomly(app, rng, owner_id, 150)
        await assert_anchors_agree(app, rng)
    built = await rebuild(app)
    assert built.changes > 0
    assert (await execute(app, "SELECT count(*) FROM item_rank_changes")).scalar_one() == 0
    await change_randomly(app, rng, owner_id, 40)
    await assert_anchors_agree(app, rng)


async def test_new_rows_before_the_first_anchor_and_an_emptied_table(
    app: FastAPI, rng: random.Random
) -> None:
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 100)
    await rebuild(app)
    # Keys below every anchor's: the positions before the first anchor's count.
    early = [
        {"owner_id": owner_id, "name": "a", "price": 0, "created_at": EPOCH - timedelta(days=1)}
    ] * 30
    await execute(app, INSERT, early)  # type: ignore[arg-type]
    await assert_anchors_agree(app, rng)
    await execute(app, "DELETE FROM items")
    await execute(app, INSERT, early[:3])  # type: ignore[arg-type]
    await assert_anchors_agree(app, rng)


async def test_a_change_committed_during_a_build_is_counted(
    app: FastAPI, rng: random.Random
) -> None:
    """The build's snapshot is taken, then it waits (a lock held on the anchors'
    table) while another connection inserts, deletes and updates items and
    commits: those changes stay logged, and the anchors count them."""
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 1_000)
    await rebuild(app)
    await change_randomly(app, rng, owner_id, 50)  # taken in by the build below
    async with app.state.engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE item_rank_anchors IN SHARE MODE"))
        building = asyncio.create_task(rebuild(app))
        for _ in range(200):
            waiting = (
                await execute(
                    app,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'DELETE FROM item_rank_anchors%'",
                )
            ).scalar_one()
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the build waits after taking its snapshot"
        await change_randomly(app, rng, owner_id, 60)
        logged = (await execute(app, "SELECT count(*) FROM item_rank_changes")).scalar_one()
        await blocker.rollback()
    built = await building
    remaining = (await execute(app, "SELECT count(*) FROM item_rank_changes")).scalar_one()
    assert 0 < remaining < logged
    assert built.changes == logged - remaining
    await assert_anchors_agree(app, rng)


async def test_readers_agree_with_offset_while_items_change_and_builds_commit(
    app: FastAPI, rng: random.Random
) -> None:
    """Each check reads the anchors' answer and a plain OFFSET in one snapshot
    while another task changes items and builds again and again: at no moment
    do anchors and log disagree with the table."""
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 600)
    await rebuild(app)
    writing = asyncio.Event()
    builds = 0

    async def write() -> None:
        nonlocal builds
        writer_rng = random.Random(5)  # noqa: S311 (a repeatable test, not a secret)
        while not writing.is_set():
            await change_randomly(app, writer_rng, owner_id, 5)
            async with app.state.session_factory() as db:
                builds += await item_ranks.rebuild(db=db, spacing=SPACING) is not None

    writer = asyncio.create_task(write())
    try:
        for _ in range(40):
            async with app.state.reader.connection() as connection, connection.transaction():
                await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                total = await count_items(connection)
                for order in SORTS:
                    for offset in (0, rng.randrange(total + 2), total - 1):
                        expected = await plain(connection, order, offset)
                        found = await anchored(connection, order, offset)
                        assert found == expected, (order.spec, offset, total)
            await asyncio.sleep(0)
    finally:
        writing.set()
        await writer
    assert builds > 1


async def test_without_anchors_or_past_the_bound_the_lookup_gives_no_row(
    app: FastAPI, rng: random.Random
) -> None:
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 50)
    async with app.state.reader.connection() as connection:
        sql = item_ranks.key_at_offset_sql(SortOrder("name"))
        values = {"offset": 10, "max_changes": 5}
        assert await (await connection.execute(sql, values)).fetchall() == []
    await rebuild(app)
    await change_randomly(app, rng, owner_id, 20)
    async with app.state.reader.connection() as connection:
        assert await (await connection.execute(sql, values)).fetchall() == []


async def test_truncating_items_forgets_the_anchors(app: FastAPI, rng: random.Random) -> None:
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 50)
    await rebuild(app)
    await execute(app, "TRUNCATE items")
    for table in ("item_rank_builds", "item_rank_anchors", "item_rank_changes"):
        count = (await execute(app, f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
        assert count == 0, table


async def test_the_sweep_builds_when_due_and_empties_the_log_otherwise(
    app: FastAPI, settings: Settings, rng: random.Random
) -> None:
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 300)
    await execute(app, "ANALYZE items")

    async def swept(**overrides: Any) -> None:
        async with app.state.session_factory() as db:
            assert await sweep(
                db=db, settings=settings.model_copy(update=overrides), now=datetime.now(UTC)
            )

    async def state() -> tuple[int, int]:
        builds = (await execute(app, "SELECT count(*) FROM item_rank_builds")).scalar_one()
        changes = (await execute(app, "SELECT count(*) FROM item_rank_changes")).scalar_one()
        return builds, changes

    assert await state() == (0, 300)
    await swept(LIST_RANK_MIN_ROWS=301)  # small: the log is emptied, nothing built
    assert await state() == (0, 0)
    await swept(LIST_RANK_MIN_ROWS=300, LIST_RANK_SPACING=SPACING)
    assert await state() == (1, 0)
    await change_randomly(app, rng, owner_id, 20)
    _, logged = await state()
    await swept(LIST_RANK_MAX_CHANGES=2 * logged)  # half the bound: not yet
    assert await state() == (1, logged)
    await swept(LIST_RANK_MAX_CHANGES=2 * logged - 2, LIST_RANK_SPACING=SPACING)
    assert await state() == (1, 0)
    await assert_anchors_agree(app, rng)


async def test_a_failed_build_leaves_the_sweep_done(
    app: FastAPI,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(**_: Any) -> None:
        raise RuntimeError("no build today")

    monkeypatch.setattr(item_ranks, "maintain", failing)
    async with app.state.session_factory() as db:
        counts = await sweep(db=db, settings=settings, now=datetime.now(UTC))
    assert counts is not None
    assert "building the item rank anchors failed" in caplog.text


async def test_the_http_list_pages_alike_with_and_without_anchors(
    app: FastAPI,
    settings: Settings,
    admin_tokens: dict[str, Any],
    rng: random.Random,
) -> None:
    owner_id = await owner(app)
    await seed(app, rng, owner_id, 400)
    headers = bearer(admin_tokens["access_token"])

    async def pages(client: httpx.AsyncClient) -> list[Any]:
        answers = []
        for sort in ("name", "-name", "price", "-price", "created_at", "-created_at"):
            for offset in (0, 6, 7, 8, 50, 333, 399, 400, 401):
                response = await client.get(
                    "/api/items/",
                    params={"sort": sort, "offset": offset, "limit": 5},
                    headers=headers,
                )
                assert response.status_code == 200, response.text
                body = response.json()
                answers.append(([item["id"] for item in body["items"]], body["next"]))
        return answers

    async with (
        app_with(settings, LIST_RANK_SPACING=SPACING) as anchored_app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=anchored_app), base_url="http://test"
        ) as client,
    ):
        await rebuild(app)
        await change_randomly(app, rng, owner_id, 30)  # logged: the anchors count them
        assert (await execute(app, "SELECT count(*) FROM item_rank_changes")).scalar_one()
        with_anchors = await pages(client)
        await execute(app, "UPDATE item_rank_builds SET rows = rows + 1")
        # A wrong count of rows shifts the descending pages: the anchors were used.
        assert await pages(client) != with_anchors
        await execute(app, "DELETE FROM item_rank_builds")  # no anchors: the plain walk
        assert await pages(client) == with_anchors
