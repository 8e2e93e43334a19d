"""Pagination and sorting, shared by every list."""

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, UnaryExpression, asc, bindparam, desc, func
from sqlalchemy import select as select_columns

from app.database.reads import ReadPool, driver_sql
from app.schema.common import Page, PageParams

Out = TypeVar("Out", bound=BaseModel)
# A SELECT of any columns.
AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class SortOrder:
    """`price` ascending, `-price` descending; the field was checked by the list's
    params model."""

    spec: str

    @property
    def field(self) -> str:
        return self.spec.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.spec.startswith("-")

    def clauses(self, model: Any) -> list[UnaryExpression[Any]]:
        column = getattr(model, self.field)
        return [desc(column) if self.descending else asc(column)]


@dataclass(frozen=True, slots=True)
class ListSQL:
    """The SQL of one list's shape (its filters and order), compiled once: a
    request only binds values (see app/database/reads.py)."""

    page: str
    count: str


def list_sql(statement: AnySelect, *, model: Any, order: SortOrder) -> ListSQL:
    """`statement`'s rows sorted (ties broken by id, so pages never overlap), a
    page of them (`limit` and `offset` bound per request), and their count."""
    return ListSQL(
        page=driver_sql(
            statement.order_by(*order.clauses(model), model.id)
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
        ),
        count=driver_sql(
            select_columns(func.count().label("count")).select_from(statement.subquery())
        ),
    )


async def paginate(
    *,
    reader: ReadPool,
    sql: ListSQL,
    values: dict[str, Any],
    params: PageParams,
    out: type[Out],
) -> Page[Out]:
    """One page, read as `out`, with the count of all matches. A first page that is
    not full is its own count; otherwise the count is a second statement on the
    same connection."""
    async with reader.connection() as connection:
        page = {**values, "limit": params.limit, "offset": params.offset}
        rows = await (await connection.execute(sql.page, page)).fetchall()
        if params.offset == 0 and len(rows) < params.limit:
            total = len(rows)
        else:
            counted = await (await connection.execute(sql.count, values)).fetchone()
            assert counted is not None  # a count always has its row
            total = counted["count"]
    # One validation of the whole page (pydantic's core loops over the rows).
    return Page[out].model_validate(  # type: ignore[valid-type]
        {"items": rows, "total": total, "limit": params.limit, "offset": params.offset}
    )
