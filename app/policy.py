"""Who may do what: the one policy.

A caller is a `Viewer`: who is asking (their id, their session) and the
permissions they hold. A route declares the permission it requires
(`Depends(requires(Permission.USERS_READ))`, app/dependencies.py); a service
receives the viewer and asks it, never a user's flags. Which items a viewer
reaches is decided here too (`item_scope`), as a where-clause that the ORM's
statements and the read pool's compiled SQL both use.

Today's rules: every signed-in user holds the permissions on their own things
(`OWN_PERMISSIONS`); the built-in admin role, stored as `users.is_superuser`,
holds every permission. A role is a set of permissions: a new one joins
`permissions_of`, a new permission joins `Permission` (with its description).
"""

import uuid
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam
from sqlmodel import col

from app.exceptions import PermissionDenied
from app.models import AuthenticatedUser, Item, User


class Permission(StrEnum):
    """A permission is named `resource.action`."""

    # On one's own things: everyone signed in holds these.
    PROFILE_READ = "profile.read"
    PROFILE_WRITE = "profile.write"
    ITEMS_READ = "items.read"
    ITEMS_WRITE = "items.write"
    # On anyone's: held through a role (today only the built-in admin role).
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    USERS_SESSIONS = "users.sessions"
    ITEMS_READ_ALL = "items.read_all"
    ITEMS_WRITE_ALL = "items.write_all"
    ROLES_MANAGE = "roles.manage"
    AUDIT_READ = "audit.read"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS: Final[dict[Permission, str]] = {
    Permission.PROFILE_READ: "Read one's own account and sessions",
    Permission.PROFILE_WRITE: "Change or delete one's own account, its password and sessions",
    Permission.ITEMS_READ: "Read and list one's own items",
    Permission.ITEMS_WRITE: "Create, change and delete one's own items",
    Permission.USERS_READ: "Read and list every account",
    Permission.USERS_WRITE: "Change and delete any account (its flags included)",
    Permission.USERS_SESSIONS: "List and end any account's sessions",
    Permission.ITEMS_READ_ALL: "Read and list every item, whoever owns it",
    Permission.ITEMS_WRITE_ALL: "Change and delete every item, whoever owns it",
    Permission.ROLES_MANAGE: "Grant and withdraw roles",
    Permission.AUDIT_READ: "Read the audit log",
}

OWN_PERMISSIONS: Final = frozenset(
    {
        Permission.PROFILE_READ,
        Permission.PROFILE_WRITE,
        Permission.ITEMS_READ,
        Permission.ITEMS_WRITE,
    }
)
# The built-in admin role.
ADMIN_PERMISSIONS: Final = frozenset(Permission)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, with what rights: built from the current user's lookup
    (`viewer_of`), never by a query of its own."""

    id: int
    is_active: bool
    permissions: frozenset[Permission]
    # The session the caller's access token names.
    session_id: uuid.UUID

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """PermissionDenied (403, "Not enough privileges") unless the viewer holds it."""
        if permission not in self.permissions:
            raise PermissionDenied()


def permissions_of(user: AuthenticatedUser) -> frozenset[Permission]:
    """The permissions a user holds: their own things', and every role's."""
    return ADMIN_PERMISSIONS if user.is_superuser else OWN_PERMISSIONS


def viewer_of(user: AuthenticatedUser) -> Viewer:
    return Viewer(
        id=user.id,
        is_active=user.is_active,
        permissions=permissions_of(user),
        session_id=user.session_id,
    )


# --- Which items a viewer reaches -------------------------------------------------

Statement = TypeVar("Statement", bound=Select[*tuple[Any, ...]])
OWNER_ID: Final = "owner_id"


class ItemScope(Enum):
    """The items a statement reaches: all of them, or only the viewer's own.

    A scope is a statement's shape (a compiled statement is cached per scope);
    the viewer's values bind it (`values`). The same where-clause serves the ORM
    (`db.exec(statement, params=scope.values(viewer))`) and the read pool's SQL."""

    ALL = "all"
    OWN = "own"

    @property
    def where(self) -> ColumnElement[bool] | None:
        """The where-clause, with `:owner_id` left to bind; None when unrestricted."""
        if self is ItemScope.OWN:
            return col(Item.owner_id) == bindparam(OWNER_ID)
        return None

    def restrict(self, statement: Statement) -> Statement:
        where = self.where
        return statement if where is None else statement.where(where)

    def values(self, viewer: Viewer) -> dict[str, int]:
        return {OWNER_ID: viewer.id} if self is ItemScope.OWN else {}


def item_scope(viewer: Viewer, *, write: bool = False) -> ItemScope:
    """Which items the viewer may read (or, `write`, change or delete): every
    item with items.read_all (items.write_all), else their own."""
    everyone = Permission.ITEMS_WRITE_ALL if write else Permission.ITEMS_READ_ALL
    return ItemScope.ALL if viewer.can(everyone) else ItemScope.OWN


# --- Where the built-in admin role is stored ----------------------------------------

# The accounts that hold the admin role and can use it.
ACTIVE_ADMINS: Final[ColumnElement[bool]] = and_(col(User.is_superuser), col(User.is_active))


def admin_role_columns(*, granted: bool) -> dict[str, bool]:
    """The admin role as a users row's columns, for an INSERT's values."""
    return {"is_superuser": granted}


def grant_admin_role(user: User, *, granted: bool) -> None:
    user.is_superuser = granted
