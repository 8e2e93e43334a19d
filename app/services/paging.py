"""Pagination and sorting, shared by every list."""

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import UnaryExpression, asc, desc, func
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.schema.common import Page

Row = TypeVar("Row", bound=SQLModel)
Out = TypeVar("Out", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SortOrder:
    """`price` ascending, `-price` descending; the field is checked by the route."""

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


async def paginate(
    *,
    session: AsyncSession,
    statement: SelectOfScalar[Row],
    model: type[Row],
    paging: Paging,
    order: SortOrder,
    out: type[Out],
) -> Page[Out]:
    """One page of `statement`, sorted (ties broken by id, so pages never overlap),
    with the total count of its matches."""
    total = (await session.exec(select(func.count()).select_from(statement.subquery()))).one()
    rows = await session.exec(
        statement.order_by(*order.clauses(model), col(model.id))  # type: ignore[attr-defined]
        .limit(paging.limit)
        .offset(paging.offset)
    )
    return Page[out](  # type: ignore[valid-type]
        items=[out.model_validate(row) for row in rows],
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )
