"""API key shapes: what creates one, the answer that shows the key once, and
what a list shows (never the key)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator

from app.models import MAX_API_KEY_NAME_LENGTH
from app.policy import Permission
from app.schema.common import StrictInput

Scopes = Annotated[
    list[Permission],
    Field(
        min_length=1,
        max_length=4 * len(Permission),
        description="What the key may do: permission names of `GET /api/permissions`, "
        "each one the caller holds. At each request the key holds these **and** what its "
        "owner holds then, no more.",
        examples=[["items.read", "items.write"]],
    ),
]


class ApiKeyCreate(StrictInput):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_API_KEY_NAME_LENGTH),
    ] = Field(examples=["CI deploy"])
    scopes: Scopes
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (with a time zone, in the future); "
        "none: when revoked.",
        examples=["2031-01-01T00:00:00Z"],
    )

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str = Field(examples=["CI deploy"])
    prefix: str = Field(
        description="The key's first characters, to tell keys apart.", examples=["fsk_3kT9qZ"]
    )
    scopes: list[Permission]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(
        description="The last request made with the key, to the minute; null if never used."
    )


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    name: str = Field(examples=["CI deploy"])
    key: str = Field(
        description="The key: send it as `Authorization: Bearer <key>`. Shown this once; "
        "only its hash is kept.",
        examples=["fsk_3kT9qZ0aLmN4pQ8rS2tU6vW1xY5zAb7Cd9E1fG"],
    )
    prefix: str = Field(examples=["fsk_3kT9qZ"])
    scopes: list[Permission]
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewApiKey:
    """A key as a request asks for it (POST /api/auth/api-keys)."""

    name: str
    scopes: frozenset[Permission]
    expires_at: datetime | None

    @classmethod
    def from_request(cls, data: ApiKeyCreate) -> Self:
        return cls(name=data.name, scopes=frozenset(data.scopes), expires_at=data.expires_at)
