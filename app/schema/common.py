"""Shapes shared by every domain: errors, pages, money."""

from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Exact in the database and in Python; a JSON number on the wire. NUMERIC(12,2)
# holds at most 12 significant digits, which a float's shortest repr keeps exact.
Money = Annotated[
    Decimal,
    PlainSerializer(float, return_type=float, when_used="json"),
]


class ErrorDetail(BaseModel):
    detail: str = Field(examples=["Not found"])


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(from_attributes=True)

    items: list[T]
    total: int = Field(description="How many match, across all pages.", examples=[42])
    limit: int = Field(examples=[20])
    offset: int = Field(examples=[0])


def reject_null(value: object) -> object:
    """For PATCH fields that may be left out but never cleared."""
    if value is None:
        raise ValueError("cannot be null; leave the field out to keep it")
    return value


class StrictInput(BaseModel):
    """Request bodies refuse unknown fields: `id` or `owner_id` cannot be smuggled in."""

    model_config = ConfigDict(extra="forbid")
