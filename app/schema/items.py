"""Item shapes: input for POST/PUT, partial input for PATCH, the list's query
string, and the output."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    ValidationInfo,
    computed_field,
    field_validator,
)

from app.schema.common import MAX_MONEY, Money, PageParams, StrictInput, reject_null, storable_text

MAX_TAGS = 20

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(description="1–200 characters.", examples=["Espresso machine"]),
]
Description = Annotated[
    str,
    StringConstraints(max_length=10_000),
    Field(description="Free text, *Markdown* welcome.", examples=["Barely used."]),
]
Price = Annotated[
    Decimal,
    Field(
        gt=0,
        max_digits=12,
        decimal_places=2,
        description="Greater than 0, in cents precision.",
        examples=[199.99],
    ),
]
Tax = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2, description="0 or more.", examples=[38.0]),
]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


def _unique(tags: list[str]) -> list[str]:
    if len(set(tags)) != len(tags):
        raise ValueError("tags must be unique")
    return tags


Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS,
        description=f"Up to {MAX_TAGS} unique tags of 1–50 characters.",
        examples=[["kitchen", "coffee"]],
    ),
    AfterValidator(_unique),
]


class Image(StrictInput):
    url: HttpUrl = Field(
        description="An http(s) URL.", examples=["https://example.com/espresso.jpg"]
    )
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = (
        Field(examples=["Front view"])
    )

    @field_validator("url")
    @classmethod
    def _web_url(cls, url: HttpUrl) -> HttpUrl:
        if len(str(url)) > 2048:
            raise ValueError("URL must be at most 2048 characters")
        return url


class ItemCreate(StrictInput):
    """POST and PUT: `name` and `price` are required; absent optional fields are cleared."""

    name: Name
    description: Description | None = None
    price: Price
    tax: Tax | None = None
    tags: Tags = Field(default_factory=list)
    image: Image | None = None


class ItemPatch(StrictInput):
    """PATCH: only the fields sent change. `null` clears an optional field."""

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    tax: Tax | None = None
    tags: Tags | None = None
    image: Image | None = None

    _required_fields_cannot_be_null = field_validator("name", "price", "tags")(reject_null)


class ImageOut(BaseModel):
    url: str
    name: str


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    name: str
    description: str | None
    price: Money
    tax: Money | None
    tags: list[str]
    image: ImageOut | None
    created_at: datetime
    updated_at: datetime

    @computed_field(description="price + tax")  # type: ignore[prop-decorator]
    @property
    def total(self) -> Money:
        return self.price + (self.tax or Decimal(0))


ItemSortField = Literal["name", "-name", "price", "-price", "created_at", "-created_at"]
SearchText = Annotated[
    str | None,
    Field(min_length=1, max_length=200, description="Substring of name or description, any case."),
    AfterValidator(storable_text),
]
# Bounded like the NUMERIC(12,2) column they are compared with.
PriceBound = Annotated[Decimal | None, Field(ge=0, le=MAX_MONEY, decimal_places=2)]


class ItemListParams(PageParams):
    sort: ItemSortField = Field(
        default="-created_at",
        description="`name`, `price` or `created_at`; a leading `-` sorts descending.",
    )
    q: SearchText = None
    tag: Annotated[
        str | None,
        Field(min_length=1, max_length=50, description="Has this tag."),
        AfterValidator(storable_text),
    ] = None
    min_price: Annotated[PriceBound, Field(description="Price at least this.")] = None
    max_price: Annotated[PriceBound, Field(description="Price at most this.")] = None

    @field_validator("max_price")
    @classmethod
    def _not_below_min_price(
        cls, max_price: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        min_price = info.data.get("min_price")
        if max_price is not None and min_price is not None and max_price < min_price:
            raise ValueError("max_price must not be below min_price")
        return max_price
