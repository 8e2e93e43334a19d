"""Rank anchors: an exact deep `offset` on the list of all items.

No Postgres index can jump to the n-th row: `offset=5000000` walks five million
index entries (~700 ms). For the one list that large (an admin's, of every item,
without filters) each sort keeps anchors: the item at ascending positions 0, K,
2K… of (field, id), recorded from one snapshot of the table (item_rank_anchors,
with the count of rows then in item_rank_builds). Triggers on `items` (migration
0012) log every change since: the sort keys of each row that came (+1) or went
(-1), an update being both.

How many rows now lie strictly before anchor i is then its position plus the
deltas logged below its key: c_i = position_i + Σ delta for (key, id) < (key_i,
id_i), rising with i. The row at ascending position M is the (M - c_i)-th from the
last anchor with c_i ≤ M: a walk of about K entries, not M. Descending position
P is ascending M = total - 1 - P, total being the rows at the build plus every
delta. With D changes logged an anchor's count is within D of its position, so
only the anchors between M - D - K and M + D can be that one.

K is LIST_RANK_SPACING, 10,000 by default: a walk of 10,000 index entries costs
~1.5 ms at 10,000,000 items, and a sort then has 1,000 anchors (~130 kB). A
smaller K saves little more (the lookup's other work is a few ms) and a larger
one lengthens every walk; a build costs the same whatever K (it reads each sort's
index whole).

A build computes the anchors and deletes the logged changes in one REPEATABLE READ
transaction: the changes it deletes are those its snapshot saw (so the anchors
include them), and those committed since stay logged. Readers see the old
anchors with the old log or the new with the new, never a mix, and the lookup is
one statement (one snapshot) reading the build, the log, the anchors and the
row. The sweep builds (app/services/maintenance.py): once the table is large
(LIST_RANK_MIN_ROWS), and again when the log holds half of LIST_RANK_MAX_CHANGES,
beyond which readers stop using the anchors (each deep page reads the whole log).
"""

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.models.models import ITEM_SORT_FIELDS
from app.services.paging import SortOrder

logger = logging.getLogger(__name__)

# One build (or trim of the log) at a time: pg_try_advisory_xact_lock.
RANKS_LOCK = "items:rank-anchors"


def _checked(field: str) -> str:
    # Field names are spliced into SQL: only the sort columns, never a request's text.
    if field not in ITEM_SORT_FIELDS:
        raise ValueError(f"not a sort field of items: {field!r}")
    return field


@cache
def key_at_offset_sql(order: SortOrder) -> str:
    """One statement, hence one snapshot: the row at `offset` (0-based, in the
    sort's direction) of all items, by the anchors. Its one row (none when there
    are no anchors or the log holds more than `max_changes`) gives the `total`
    now, the ascending `position` asked for, how many rows were walked past the
    anchor (`skip`; null when the walk started at the first row), and the row's
    key and `id` (null when the position is past either end)."""
    field = _checked(order.field)
    position = (
        "build.rows + log.net - 1 - %(offset)s::bigint"
        if order.descending
        else "%(offset)s::bigint"
    )
    # The changes below the lowest candidate anchor are only summed; those among
    # the candidates are sorted with them, anchors before a change of the same key
    # (kind 0 < 1): a running sum then gives each anchor the deltas strictly below
    # it. Sorting only those keeps a long log cheap (a few ms for 20,000 changes).
    # `chosen` is empty only for a position before the first anchor's count (rows
    # inserted below it): then the walk starts at the first row, fewer than D + K.
    return f"""
WITH build AS (
    SELECT rows, spacing FROM item_rank_builds
), log AS (
    SELECT count(*) AS changes, coalesce(sum(delta), 0) AS net
    FROM (SELECT delta FROM item_rank_changes LIMIT %(max_changes)s::bigint + 1) AS logged
), target AS (
    SELECT build.rows + log.net AS total, log.changes, build.spacing, {position} AS position
    FROM build, log
    WHERE log.changes <= %(max_changes)s::bigint
), wanted AS (
    SELECT * FROM target WHERE position >= 0 AND position < total
), candidates AS (
    SELECT a.{field} AS key, a.id, a.position
    FROM item_rank_anchors AS a, wanted
    WHERE a.field = '{field}'
      AND a.position BETWEEN wanted.position - wanted.changes - wanted.spacing
                         AND wanted.position + wanted.changes
), lowest AS (
    SELECT key, id FROM candidates ORDER BY position LIMIT 1
), highest AS (
    SELECT key, id FROM candidates ORDER BY position DESC LIMIT 1
), below AS (
    SELECT coalesce(sum(c.delta), 0) AS delta
    FROM item_rank_changes AS c
    WHERE (c.{field}, c.id) < (SELECT key, id FROM lowest)
), events AS (
    SELECT key, id, 0 AS kind, position + (SELECT delta FROM below) AS position, 0 AS delta
    FROM candidates
    UNION ALL
    SELECT c.{field}, c.id, 1, 0, c.delta
    FROM item_rank_changes AS c
    WHERE (c.{field}, c.id) >= (SELECT key, id FROM lowest)
      AND (c.{field}, c.id) < (SELECT key, id FROM highest)
), counted AS (
    SELECT key, id, kind,
           position + sum(delta) OVER (ORDER BY key, id, kind ROWS UNBOUNDED PRECEDING) AS before
    FROM events
), chosen AS (
    SELECT counted.key, counted.id, wanted.position - counted.before AS skip
    FROM counted, wanted
    WHERE counted.kind = 0 AND counted.before <= wanted.position
    ORDER BY counted.key DESC, counted.id DESC
    LIMIT 1
), found AS (
    (SELECT items.{field}, items.id FROM items
     WHERE (items.{field}, items.id) >= (SELECT key, id FROM chosen)
     ORDER BY items.{field}, items.id
     OFFSET (SELECT skip FROM chosen) LIMIT 1)
    UNION ALL
    (SELECT items.{field}, items.id FROM items
     WHERE NOT EXISTS (SELECT FROM chosen) AND EXISTS (SELECT FROM wanted)
     ORDER BY items.{field}, items.id
     OFFSET (SELECT position FROM wanted) LIMIT 1)
)
SELECT target.total, target.position, (SELECT skip FROM chosen) AS skip, found.{field}, found.id
FROM target LEFT JOIN found ON true
"""  # noqa: S608 (a sort column's name, checked)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """One build: the rows it ranked, and the logged changes it took in."""

    rows: int
    changes: int


def _anchors_sql(field: str) -> str:
    field = _checked(field)
    return f"""
INSERT INTO item_rank_anchors (field, position, id, {field})
SELECT '{field}', position, id, {field}
FROM (SELECT {field}, id, row_number() OVER (ORDER BY {field}, id) - 1 AS position
      FROM items) AS ranked
WHERE mod(position, :spacing) = 0
"""  # noqa: S608 (a sort column's name, checked)


async def _locked(connection: AsyncConnection) -> bool:
    locked = await connection.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended(:name, 0))"),
        {"name": RANKS_LOCK},
    )
    return bool(locked.scalar_one())


async def rebuild(*, db: AsyncSession, spacing: int) -> Rebuilt | None:
    """Build the anchors again, every `spacing`-th row of each sort, from one
    snapshot, and delete the changes that snapshot saw; None when another process
    is building. Commits."""
    connection = await db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        # The snapshot is taken by this first statement, the lock within it: a
        # build committed in between makes this one fail to serialize (it deletes
        # the same rows), never build from an older snapshot.
        if not await _locked(connection):
            await db.rollback()
            return None
        rows = (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one()
        await connection.execute(text("DELETE FROM item_rank_anchors"))
        await connection.execute(text("DELETE FROM item_rank_builds"))
        for field in ITEM_SORT_FIELDS:
            await connection.execute(text(_anchors_sql(field)), {"spacing": spacing})
        await connection.execute(
            text(
                "INSERT INTO item_rank_builds (rows, spacing, built_at)"
                " VALUES (:rows, :spacing, now())"
            ),
            {"rows": rows, "spacing": spacing},
        )
        # Only the rows this snapshot sees: those committed since stay, being
        # exactly the changes the anchors do not include.
        taken = await connection.execute(text("DELETE FROM item_rank_changes"))
        await db.commit()
    except DBAPIError as exc:
        await db.rollback()
        if getattr(exc.orig, "sqlstate", None) in {"40001", "23505"}:
            logger.info("item rank anchors: another build committed meanwhile")
            return None
        raise
    return Rebuilt(rows=rows, changes=taken.rowcount)


async def _state(db: AsyncSession, *, settings: Settings) -> dict[str, Any]:
    connection = await db.connection()
    row = await connection.execute(
        text(
            "SELECT EXISTS (SELECT FROM item_rank_builds) AS built,"
            " (SELECT count(*) FROM (SELECT FROM item_rank_changes LIMIT :bound) AS c)"
            " AS changes,"
            " (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'items'::regclass)"
            " AS estimate"
        ),
        {"bound": settings.LIST_RANK_MAX_CHANGES // 2 + 1},
    )
    return dict(row.mappings().one())


async def maintain(*, db: AsyncSession, settings: Settings) -> Rebuilt | None:
    """The sweep's part: build the anchors when due (see the module's docstring);
    without anchors, empty the log instead (it means nothing then, and would grow
    for ever). Commits; None when nothing was built."""
    state = await _state(db, settings=settings)
    await db.rollback()
    if state["built"]:
        due = state["changes"] > settings.LIST_RANK_MAX_CHANGES // 2
    else:
        due = state["estimate"] >= settings.LIST_RANK_MIN_ROWS
        if not due and state["changes"]:
            await _forget_changes(db)
    if not due:
        return None
    built = await rebuild(db=db, spacing=settings.LIST_RANK_SPACING)
    if built is not None:
        logger.info(
            "item rank anchors built over %d items, taking in %d logged changes",
            built.rows,
            built.changes,
        )
    return built


async def _forget_changes(db: AsyncSession) -> None:
    """Empty the log while there are no anchors, under the builds' lock: none
    can commit between the check and the delete."""
    connection = await db.connection()
    if await _locked(connection):
        await connection.execute(
            text("DELETE FROM item_rank_changes WHERE NOT EXISTS (SELECT FROM item_rank_builds)")
        )
    await db.commit()
