"""Pagination and sorting, shared by every list.

Pages are read by keyset: a list is sorted by one column and the id (the tiebreak,
in the same direction), and a page is the first `limit` rows after a position
(a cursor's, app/services/cursors.py), which the index of that sort finds at once
however deep the page. `offset` still works, the slow way: the row before the
offset is found first, reading only the sort's index when the filters allow
(an index-only scan), then the page is read after it like a cursor's.

`total` is exact up to a bound (LIST_EXACT_TOTAL_LIMIT): counting stops one row
past it. Beyond, it is the planner's estimate of the matches (from the table's
statistics: pg_class.reltuples for an unfiltered list), and `total_exact` is false.
"""

import json
from dataclasses import dataclass
from typing import Any, TypeVar

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

from app.database.reads import ReadConnection, ReadPool, driver_sql
from app.schema.common import Page, PageParams
from app.services import cursors

Out = TypeVar("Out", bound=BaseModel)
# A SELECT of any columns.
AnySelect = Select[*tuple[Any, ...]]


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

    def keys(self, model: Any) -> tuple[Any, Any]:
        return getattr(model, self.field), model.id

    def clauses(self, model: Any) -> list[UnaryExpression[Any]]:
        direction = desc if self.descending else asc
        return [direction(key) for key in self.keys(model)]

    def after(self, model: Any) -> ColumnElement[bool]:
        """Rows after the position bound as `after_key`, `after_id`."""
        rows = tuple_(*self.keys(model))
        position = tuple_(bindparam("after_key"), bindparam("after_id"))
        return rows < position if self.descending else rows > position


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


def _python_type(column_type: TypeEngine[Any]) -> type:
    # A TypeDecorator (SQLModel's AutoString) claims `object`: ask what it wraps.
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return column_type.python_type


def list_sql(statement: AnySelect, *, model: Any, order: SortOrder) -> ListSQL:
    """`statement`'s rows sorted (ties broken by id, so pages never overlap), and
    the statements that page through and count them."""
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
) -> cursors.Position | None:
    """Where the page starts: after the cursor's row, or after the row before the
    offset; None for the first page (or an offset past the end: no row)."""
    if params.cursor is not None:
        return cursors.decode(params.cursor, list_fingerprint=fingerprint, key_type=sql.key_type)
    if not params.offset:
        return None
    rows = await _fetch_all(connection, sql.key_at_offset, {**values, "offset": params.offset - 1})
    return _position(sql, rows[0]) if rows else None


def _position(sql: ListSQL, row: dict[str, Any]) -> cursors.Position:
    return cursors.Position(key=row[sql.order.field], id=row["id"])


async def _total(
    connection: ReadConnection, *, sql: ListSQL, values: dict[str, Any], exact_limit: int
) -> tuple[int, bool]:
    """How many match, and whether exactly: counted up to `exact_limit`, beyond it
    the planner's estimate (never below what was counted)."""
    counted = await _fetch_all(
        connection, sql.bounded_count, {**values, "count_limit": exact_limit + 1}
    )
    count: int = counted[0]["count"]
    if count <= exact_limit:
        return count, True
    explained = await _fetch_all(connection, sql.estimate, values)
    plan = explained[0]["QUERY PLAN"]
    if isinstance(plan, str):  # json, not jsonb: psycopg may hand over the text
        plan = json.loads(plan)
    return max(count, int(plan[0]["Plan"]["Plan Rows"])), False


async def paginate(
    *,
    reader: ReadPool,
    sql: ListSQL,
    values: dict[str, Any],
    params: PageParams,
    exact_total_limit: int,
    out: type[Out],
) -> Page[Out]:
    """One page, read as `out`, with the count of all matches and the cursor of
    the next page. A page that reaches the end from a known place (the start, or
    an offset) is its own count; otherwise the count is bounded (see _total)."""
    fingerprint = cursors.fingerprint(list_name=sql.name, sort=sql.order.spec, values=values)
    async with reader.connection() as connection:
        start = await _start(
            connection, sql=sql, values=values, params=params, fingerprint=fingerprint
        )
        page = {**values, "limit": params.limit + 1}
        if start is not None:
            after = {"after_key": start.key, "after_id": start.id}
            rows = await _fetch_all(connection, sql.page_after, {**page, **after})
        elif params.offset:  # past the last row
            rows = []
        else:
            rows = await _fetch_all(connection, sql.first_page, page)
        more = len(rows) > params.limit
        rows = rows[: params.limit]
        if not more and params.cursor is None and (rows or not params.offset):
            total, exact = params.offset + len(rows), True
        else:
            total, exact = await _total(
                connection, sql=sql, values=values, exact_limit=exact_total_limit
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
