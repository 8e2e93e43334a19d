"""User shapes: what comes in, what goes out (never a password or a hash), and
the typed commands a route builds from what came in for the service."""

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Final, Literal, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from app.schema.common import PageParams, StrictInput, reject_null

# bcrypt reads at most 72 bytes: a longer password is refused, never truncated.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_LENGTH = 8


def _acceptable_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(
            f"Password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)"
        )
    return password


NewPassword = Annotated[
    str,
    AfterValidator(_acceptable_password),
    Field(
        description=f"At least {MIN_PASSWORD_LENGTH} characters and at most "
        f"{MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit).",
        examples=["correct horse battery staple"],
    ),
]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[EmailStr, Field(examples=["ada@example.com"])]
# An address read back from the database was checked by email-validator when it
# came in: answers document it as an email without checking it again (~20 µs each).
StoredEmail = Annotated[
    str, WithJsonSchema({"type": "string", "format": "email"}), Field(examples=["ada@example.com"])
]


def normalize_email(email: str) -> str:
    """One spelling per address, for registration, login and mail requests alike:
    Unicode in NFC, an IDNA (punycode) domain in Unicode, lower case. Never raises:
    text that is not an email is still normalised (it then matches no account)."""
    text = email.strip()
    try:
        text = validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        text = unicodedata.normalize("NFC", text)
    return text.lower()


class UserRegister(StrictInput):
    email: Email
    password: NewPassword
    full_name: FullName | None = Field(default=None, examples=["Ada Lovelace"])


class AccountFields(StrictInput):
    """What both the user and an admin may change. `full_name: null` clears the
    name; the email cannot be cleared."""

    email: Email | None = None
    full_name: FullName | None = None

    _email_cannot_be_null = field_validator("email")(reject_null)


class UserUpdateMe(AccountFields):
    """Only these can be changed by the user; role and activity are the admin's.
    A new `email` needs `current_password`, and becomes the account's only when
    the link mailed to it is followed."""

    current_password: str | None = Field(
        default=None,
        description="The account's password: required with a new `email`, ignored otherwise.",
        examples=["correct horse battery staple"],
    )


class UserUpdateAdmin(AccountFields):
    is_active: bool | None = None
    is_superuser: bool | None = None
    # An admin may vouch for an address (or withdraw it); an email change in the
    # same request leaves it as the admin set it.
    is_verified: bool | None = None

    _flags_cannot_be_null = field_validator("is_active", "is_superuser", "is_verified")(reject_null)


class Unchanged(Enum):
    """A field the request left out: it keeps its value (unlike `None`, which
    clears an optional one)."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnProfileUpdate:
    """What a user may change of their own account (PATCH /api/users/me)."""

    full_name: str | Unchanged | None = UNCHANGED
    # A new address, as sent: it becomes the account's only once verified.
    email: str | None = None
    current_password: str | None = None

    @classmethod
    def from_request(cls, data: UserUpdateMe) -> Self:
        sent = data.model_fields_set
        return cls(
            full_name=data.full_name if "full_name" in sent else UNCHANGED,
            email=data.email,
            current_password=data.current_password,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminUserUpdate:
    """What may be changed of anyone's account (PATCH /api/users/{id}); `None`
    keeps a field (none of these can be cleared) but `full_name`."""

    email: str | None = None
    full_name: str | Unchanged | None = UNCHANGED
    is_active: bool | None = None
    # The built-in admin role, granted or withdrawn.
    admin: bool | None = None
    is_verified: bool | None = None

    @classmethod
    def from_request(cls, data: UserUpdateAdmin) -> Self:
        return cls(
            email=data.email,
            full_name=data.full_name if "full_name" in data.model_fields_set else UNCHANGED,
            is_active=data.is_active,
            admin=data.is_superuser,
            is_verified=data.is_verified,
        )


class PasswordChange(StrictInput):
    current_password: str = Field(examples=["correct horse battery staple"])
    new_password: NewPassword


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[1])
    email: StoredEmail
    full_name: str | None = Field(examples=["Ada Lovelace"])
    is_active: bool = Field(examples=[True])
    is_superuser: bool = Field(examples=[False])
    is_verified: bool = Field(
        description="Whether `email` was proven by the link mailed to it; an email change "
        "makes it false until the new address is verified.",
        examples=[True],
    )
    created_at: datetime


UserSortField = Literal["email", "-email", "created_at", "-created_at"]


class UserListParams(PageParams):
    sort: UserSortField = Field(
        default="created_at",
        description="`email` or `created_at`; a leading `-` sorts descending.",
    )
