"""Pagination and sorting, shared by every list."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import UnaryExpression, asc, desc


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
