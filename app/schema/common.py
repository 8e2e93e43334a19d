"""Shapes shared by every domain: pages, money; the rules every input obeys."""

import re
from decimal import Decimal
from typing import Annotated, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

# What the columns hold. Ids are Postgres `integer`; offsets share the bound (no
# table holds more rows). Money is NUMERIC(12,2).
MAX_ID = 2**31 - 1
MAX_OFFSET = MAX_ID
MAX_MONEY = Decimal("9999999999.99")

# Exact in the database and in Python; a JSON number on the wire. NUMERIC(12,2)
# holds at most 12 significant digits, which a float's shortest repr keeps exact.
Money = Annotated[
    Decimal,
    PlainSerializer(float, return_type=float, when_used="json"),
]


T = TypeVar("T")


# An opaque cursor is far shorter than this (a sort key of at most 1,000 characters).
MAX_CURSOR_LENGTH = 2_000


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(from_attributes=True)

    items: list[T]
    total: int = Field(
        description=(
            "How many match, across all pages: exact when `total_exact` is true, "
            "else an estimate (beyond the exact-count bound)."
        ),
        examples=[42],
    )
    total_exact: bool = Field(
        description=(
            "False when the matches were too many (over 10,000 by default) or too "
            "slow to count exactly: `total` is then the database planner's "
            "estimate, never below what the pages showed."
        ),
        examples=[True],
    )
    limit: int = Field(examples=[20])
    offset: int = Field(examples=[0])
    next: str | None = Field(
        description=(
            "Pass as `cursor` (same sort and filters) for the page after this one; "
            "null on the last page."
        ),
        examples=["WzEsIm..."],
    )


class PageParams(BaseModel):
    """The query string every list takes: which page. A list's own query model
    adds its sort order and filters; FastAPI validates the whole query string as
    one model (`Annotated[Model, Query()]`) and documents each field as a
    parameter."""

    limit: int = Field(default=20, ge=1, le=100, description="Page size, 1–100.")
    offset: int = Field(
        default=0,
        ge=0,
        le=MAX_OFFSET,
        description=(
            f"How many to skip, 0–{MAX_OFFSET}. The slow way past the first pages: the "
            "database walks every skipped row. Follow `next` with `cursor` instead."
        ),
    )
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        description=(
            "A page's `next`: the page after it, as fast at any depth and stable "
            "while rows come and go. Only with the sort and filters it was made for, "
            "and without `offset`."
        ),
    )

    @model_validator(mode="after")
    def _cursor_or_offset(self) -> Self:
        if self.cursor is not None and self.offset:
            raise ValueError("give `cursor` or `offset`, not both")
        return self


def reject_null(value: object) -> object:
    """For PATCH fields that may be left out but never cleared."""
    if value is None:
        raise ValueError("cannot be null; leave the field out to keep it")
    return value


# A lone surrogate decodes from a JSON escape (`"\\ud800"`) but has no UTF-8 form.
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why Postgres (UTF-8 `text`) cannot store this string, or None."""
    if "\x00" in text:
        return "must not contain NUL (\\x00) characters"
    if _SURROGATE.search(text):
        return "must be valid Unicode text (no unpaired surrogates)"
    return None


def storable_text(value: T) -> T:
    """The rule every string input obeys, in bodies and query parameters alike."""
    if isinstance(value, str) and (problem := text_problem(value)):
        raise ValueError(problem)
    return value


class StrictInput(BaseModel):
    """Request bodies refuse unknown fields: `id` or `owner_id` cannot be smuggled in.
    Every string in them, or in a list of them, must be storable text: checked
    before any other validation, so no validator ever sees a NUL or a surrogate."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        if isinstance(value, list):
            for index, element in enumerate(value):
                if isinstance(element, str) and (problem := text_problem(element)):
                    raise ValueError(f"item {index} {problem}")
            return value
        return storable_text(value)
