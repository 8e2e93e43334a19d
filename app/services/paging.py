"""Pagination and sorting, shared by every list.

Pages are read by keyset: a list is sorted by one column and the id (the tiebreak,
in the same direction), and a page is the first `limit` rows after a position
(a cursor's, app/services/cursors.py), which the index of that sort finds at once
however deep the page. `offset` still works, the slow way: the row before the
offset is found first, reading only the sort's index when the filters allow
(an index-only scan), then the page is read after it like a cursor's. The list
of all items finds a deep offset's row by its rank anchors instead, exactly and
without the walk (app/services/item_ranks.py).

A filter no index serves well at scale (a substring, `q`: a trigram index is
fast for rare trigrams, but reads its whole posting lists for common ones) may
be tried on a window first: the next SCAN_ROWS rows of the unfiltered list, read
by the sort's index and filtered. When they hold a full page, or are all that
is left, that is the page; otherwise the filtered statement reads it, with
whatever index the planner picks.

`total` is exact when a count finds at most LIST_EXACT_TOTAL_LIMIT matches.
Otherwise it is the planner's estimate of the matches (from the table's
statistics: pg_class.reltuples for an unfiltered list), never below what the
pages showed, and `total_exact` is false. A list without filters is counted at
once: reading the bound's worth of index entries is cheap. A filtered one is
estimated first, and counted only when the estimate is not far beyond the bound
(TRUSTED_ESTIMATE_FACTOR), within LIST_COUNT_TIMEOUT: a filter may make even a
bounded count slow (rare matches, or an index that reads much to find them).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    UnaryExpression,
    asc,
    bindparam,
    desc,
    func,
    literal_column,
    tuple_,
)
from sqlalchemy import select as select_columns
from sqlalchemy.types import TypeDecorator, TypeEngine

from app.config import Settings
from app.database.reads import ReadConnection, ReadPool, driver_sql
from app.schema.common import Page, PageParams
from app.services import cursors

Out = TypeVar("Out", bound=BaseModel)
# A SELECT of any columns.
AnySelect = Select[*tuple[Any, ...]]
# A list's filters as conditions on the columns given: a table's, or a subquery's.
Conditions = Callable[[Any], list[ColumnElement[bool]]]

# The window a scan-first filter reads before the planner's choice: about 10 ms
# of rows filtered by a substring on a 2-core machine.
SCAN_ROWS = 20_000
# An estimate this many times the bound is believed without counting.
TRUSTED_ESTIMATE_FACTOR = 10


@dataclass(frozen=True, slots=True)
class SortOrder:
    """`price` ascending, `-price` descending; the field was checked by the list's
    params model. The id breaks ties, in the same direction: one index on (field,
    id) serves both directions, and (field, id) compares as one row."""

    spec: str

    @property
    def field(self) -> str:
        return self.spec.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.spec.startswith("-")

    def keys(self, columns: Any) -> tuple[Any, Any]:
        """The sort's columns among `columns` (a model, a table's or a subquery's)."""
        return getattr(columns, self.field), columns.id

    def clauses(self, columns: Any) -> list[UnaryExpression[Any]]:
        direction = desc if self.descending else asc
        return [direction(key) for key in self.keys(columns)]

    def after(self, columns: Any) -> ColumnElement[bool]:
        """Rows after the position bound as `after_key`, `after_id`."""
        rows = tuple_(*self.keys(columns))
        position = tuple_(bindparam("after_key"), bindparam("after_id"))
        return rows < position if self.descending else rows > position


@dataclass(frozen=True, slots=True)
class ScanFirst:
    """A list whose filters are tried on a window of the unfiltered list first."""

    unfiltered: AnySelect
    conditions: Conditions


@dataclass(frozen=True, slots=True)
class ScanSQL:
    """The window's statements: its matches (from the start, or after a position)
    and whether any row lies beyond it (`scan_limit` rows on)."""

    first_page: str
    page_after: str
    beyond_first: str
    beyond_after: str


@dataclass(frozen=True, slots=True)
class ListSQL:
    """The SQL of one list's shape (its filters and order), compiled once: a
    request only binds values (see app/database/reads.py). Pages read `limit`
    rows and one more, which tells whether another page follows."""

    name: str
    order: SortOrder
    # The sort column's Python type: what a cursor's key decodes to.
    key_type: type
    first_page: str
    page_after: str
    # The sort key and id of the row at `offset`.
    key_at_offset: str
    # How many match, counting no further than `count_limit`.
    bounded_count: str
    # EXPLAIN of the matches: the planner's estimate of how many.
    estimate: str
    # Whether filters narrow the list (beyond its scope).
    filtered: bool
    scan: ScanSQL | None = None
    # The row at `offset` by rank anchors (item_ranks.key_at_offset_sql), for an
    # offset of at least LIST_RANK_SPACING; None: the list has none.
    anchored_key_at_offset: str | None = None


def _python_type(column_type: TypeEngine[Any]) -> type:
    # A TypeDecorator (SQLModel's AutoString) claims `object`: ask what it wraps.
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return column_type.python_type


def _scan_sql(scan: ScanFirst, *, model: Any, order: SortOrder) -> ScanSQL:
    def window(after: bool) -> AnySelect:
        rows = scan.unfiltered.order_by(*order.clauses(model))
        return rows.where(order.after(model)) if after else rows

    def matches(after: bool) -> str:
        recent = window(after).limit(bindparam("scan_limit")).subquery("recent")
        return driver_sql(
            select_columns(*recent.c)
            .where(*scan.conditions(recent.c))
            .order_by(*order.clauses(recent.c))
            .limit(bindparam("limit"))
        )

    def beyond(after: bool) -> str:
        return driver_sql(
            window(after)
            .with_only_columns(*order.keys(model))
            .offset(bindparam("scan_limit"))
            .limit(literal_column("1", Integer))
        )

    return ScanSQL(
        first_page=matches(after=False),
        page_after=matches(after=True),
        beyond_first=beyond(after=False),
        beyond_after=beyond(after=True),
    )


def list_sql(
    statement: AnySelect,
    *,
    model: Any,
    order: SortOrder,
    filtered: bool = False,
    scan_first: ScanFirst | None = None,
    anchored_key_at_offset: str | None = None,
) -> ListSQL:
    """`statement`'s rows sorted (ties broken by id, so pages never overlap), and
    the statements that page through and count them. `filtered`: the statement
    has filters beyond its scope."""
    ordered = statement.order_by(*order.clauses(model)).limit(bindparam("limit"))
    matches: AnySelect = statement.with_only_columns(
        literal_column("1"), maintain_column_froms=True
    )
    return ListSQL(
        name=model.__tablename__,
        order=order,
        key_type=_python_type(getattr(model, order.field).type),
        first_page=driver_sql(ordered),
        page_after=driver_sql(ordered.where(order.after(model))),
        key_at_offset=driver_sql(
            statement.with_only_columns(*order.keys(model))
            .order_by(*order.clauses(model))
            .offset(bindparam("offset"))
            .limit(literal_column("1", Integer))
        ),
        bounded_count=driver_sql(
            select_columns(func.count().label("count")).select_from(
                matches.limit(bindparam("count_limit")).subquery()
            )
        ),
        estimate="EXPLAIN (FORMAT JSON) " + driver_sql(matches),
        filtered=filtered,
        scan=None if scan_first is None else _scan_sql(scan_first, model=model, order=order),
        anchored_key_at_offset=anchored_key_at_offset,
    )


async def _fetch_all(
    connection: ReadConnection, sql: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    return await (await connection.execute(sql, values)).fetchall()


async def _start(
    connection: ReadConnection,
    *,
    sql: ListSQL,
    values: dict[str, Any],
    params: PageParams,
    fingerprint: str,
    settings: Settings,
) -> cursors.Position | None:
    """Where the page starts: after the cursor's row, or after the row before the
    offset; None for the first page (or an offset past the end: no row)."""
    if params.cursor is not None:
        return cursors.decode(params.cursor, list_fingerprint=fingerprint, key_type=sql.key_type)
    if not params.offset:
        return None
    before = {**values, "offset": params.offset - 1}
    if sql.anchored_key_at_offset is not None and params.offset > settings.LIST_RANK_SPACING:
        anchored = await _fetch_all(
            connection,
            sql.anchored_key_at_offset,
            {**before, "max_changes": settings.LIST_RANK_MAX_CHANGES},
        )
        # No row: no anchors, or too many changes since they were built.
        if anchored:
            found = anchored[0]
            if not 0 <= found["position"] < found["total"]:
                return None  # past the end
            if found["id"] is not None:
                return _position(sql, found)
    rows = await _fetch_all(connection, sql.key_at_offset, before)
    return _position(sql, rows[0]) if rows else None


def _position(sql: ListSQL, row: dict[str, Any]) -> cursors.Position:
    return cursors.Position(key=row[sql.order.field], id=row["id"])


async def _read_page(
    connection: ReadConnection,
    *,
    sql: ListSQL,
    values: dict[str, Any],
    limit: int,
    start: cursors.Position | None,
) -> list[dict[str, Any]]:
    """`limit` + 1 rows from `start` (None: from the first)."""
    page = {**values, "limit": limit + 1}
    if start is not None:
        page |= {"after_key": start.key, "after_id": start.id}
    if sql.scan is not None:
        window = {**page, "scan_limit": SCAN_ROWS}
        rows = await _fetch_all(
            connection, sql.scan.first_page if start is None else sql.scan.page_after, window
        )
        if len(rows) > limit:
            return rows
        beyond = sql.scan.beyond_first if start is None else sql.scan.beyond_after
        if not await _fetch_all(connection, beyond, window):
            return rows  # the window held every row left
    return await _fetch_all(connection, sql.first_page if start is None else sql.page_after, page)


async def _estimate(connection: ReadConnection, *, sql: ListSQL, values: dict[str, Any]) -> int:
    explained = await _fetch_all(connection, sql.estimate, values)
    return int(explained[0]["QUERY PLAN"][0]["Plan"]["Plan Rows"])


async def _total(
    connection: ReadConnection,
    *,
    sql: ListSQL,
    values: dict[str, Any],
    settings: Settings,
    seen: int,
) -> tuple[int, bool]:
    """How many match, and whether exactly (see the module's docstring); `seen`
    is how many the pages showed there are at least."""
    bound = settings.LIST_EXACT_TOTAL_LIMIT
    counting = {**values, "count_limit": bound + 1}
    if not sql.filtered:
        count = await _count(connection, sql=sql, values=counting)
        if count <= bound:
            return count, True
        return max(count, seen, await _estimate(connection, sql=sql, values=values)), False
    estimate = max(seen, await _estimate(connection, sql=sql, values=values))
    if estimate > TRUSTED_ESTIMATE_FACTOR * bound:
        return estimate, False
    deadline_ms = str(max(1, round(settings.LIST_COUNT_TIMEOUT * 1000)))
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT set_config('statement_timeout', %s, true)", [deadline_ms]
            )
            count = await _count(connection, sql=sql, values=counting)
    except psycopg.errors.QueryCanceled:
        return estimate, False
    if count <= bound:
        return count, True
    return max(count, estimate), False


async def _count(connection: ReadConnection, *, sql: ListSQL, values: dict[str, Any]) -> int:
    counted = await _fetch_all(connection, sql.bounded_count, values)
    count: int = counted[0]["count"]
    return count


async def paginate(
    *,
    reader: ReadPool,
    sql: ListSQL,
    values: dict[str, Any],
    params: PageParams,
    settings: Settings,
    out: type[Out],
) -> Page[Out]:
    """One page, read as `out`, with the count of all matches and the cursor of
    the next page. A page that reaches the end from a known place (the start, or
    an offset) is its own count; otherwise see _total."""
    fingerprint = cursors.fingerprint(list_name=sql.name, sort=sql.order.spec, values=values)
    async with reader.connection() as connection:
        start = await _start(
            connection,
            sql=sql,
            values=values,
            params=params,
            fingerprint=fingerprint,
            settings=settings,
        )
        if start is None and params.offset:  # past the last row
            rows = []
        else:
            rows = await _read_page(
                connection, sql=sql, values=values, limit=params.limit, start=start
            )
        more = len(rows) > params.limit
        rows = rows[: params.limit]
        if not more and params.cursor is None and (rows or not params.offset):
            total, exact = params.offset + len(rows), True
        else:
            seen = (0 if params.cursor else params.offset) + len(rows) + more
            total, exact = await _total(
                connection, sql=sql, values=values, settings=settings, seen=seen
            )
    next_cursor = None
    if more:
        next_cursor = cursors.encode(_position(sql, rows[-1]), list_fingerprint=fingerprint)
    # One validation of the whole page (pydantic's core loops over the rows).
    return Page[out].model_validate(  # type: ignore[valid-type]
        {
            "items": rows,
            "total": total,
            "total_exact": exact,
            "limit": params.limit,
            "offset": params.offset,
            "next": next_cursor,
        }
    )
