"""Role and permission shapes: the catalogue of permissions, a role as it is
defined and shown, the roles granted to a user, and what a caller holds."""

from dataclasses import dataclass
from typing import Annotated, Final, Self

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.models import MAX_ROLE_NAME_LENGTH
from app.policy import Permission
from app.schema.common import StrictInput

# Lower-case letters, digits, '_', '-' and '.', a letter first: a name that reads
# the same in a URL, a log line and a JSON body.
ROLE_NAME_PATTERN: Final = rf"^[a-z][a-z0-9_.-]{{0,{MAX_ROLE_NAME_LENGTH - 1}}}$"
ROLE_NAME_RULE: Final = (
    f"1–{MAX_ROLE_NAME_LENGTH} characters: lower-case letters, digits, '_', '-' or '.', "
    "a letter first."
)
MAX_DESCRIPTION_LENGTH: Final = 500
MAX_ROLES_PER_REQUEST: Final = 100

RoleName = Annotated[
    str,
    StringConstraints(pattern=ROLE_NAME_PATTERN),
    Field(description=f"The role's name: {ROLE_NAME_RULE}", examples=["support"]),
]


def _unique_sorted(permissions: list[Permission]) -> list[Permission]:
    """A role is a set: a permission named twice is held once."""
    return sorted(set(permissions), key=list(Permission).index)


Permissions = Annotated[
    list[Permission],
    Field(
        max_length=4 * len(Permission),
        description="Permission names (`resource.action`), each one of "
        "`GET /api/permissions`; an unknown name is a 422 that lists the known ones.",
        examples=[["users.read", "items.read_all"]],
    ),
    AfterValidator(_unique_sorted),
]
Description = Annotated[
    str,
    StringConstraints(max_length=MAX_DESCRIPTION_LENGTH),
    Field(examples=["Reads accounts and items to answer support requests"]),
]


class PermissionOut(BaseModel):
    name: Permission
    description: str = Field(examples=["Read and list every account"])


class RoleCreate(StrictInput):
    name: RoleName
    description: Description = ""
    permissions: Permissions


class RoleUpdate(StrictInput):
    """A full replacement of the role's description and permissions; the name
    stays (it is the role's address)."""

    description: Description = ""
    permissions: Permissions


class RoleOut(BaseModel):
    name: str = Field(examples=["support"])
    description: str = Field(examples=["Reads accounts and items to answer support requests"])
    permissions: list[Permission]
    builtin: bool = Field(
        description="The built-in `admin` role: every permission; it cannot be changed or deleted.",
        examples=[False],
    )


class UserRolesUpdate(StrictInput):
    roles: list[RoleName] = Field(
        max_length=MAX_ROLES_PER_REQUEST,
        description="Every role the user is to hold (the others are withdrawn); `admin` "
        "is the built-in role `is_superuser` shows.",
        examples=[["support"]],
    )


class MyPermissions(BaseModel):
    roles: list[str] = Field(description="The roles the caller holds.", examples=[["support"]])
    permissions: list[Permission] = Field(
        description="Every permission the caller holds: their own things' (every user's) "
        "and every role's."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleDefinition:
    """A role as a request defines it (POST, PUT /api/roles)."""

    name: str
    description: str
    permissions: frozenset[Permission]

    @classmethod
    def created(cls, data: RoleCreate) -> Self:
        return cls(
            name=data.name, description=data.description, permissions=frozenset(data.permissions)
        )

    @classmethod
    def updated(cls, name: str, data: RoleUpdate) -> Self:
        return cls(name=name, description=data.description, permissions=frozenset(data.permissions))
