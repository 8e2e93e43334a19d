"""Who may do what: the one policy.

A caller is a `Viewer`: who is asking (their id, their session) and the
permissions they hold. A route declares the permission it requires
(`Depends(requires(Permission.USERS_READ))`, app/dependencies.py); a service
receives the viewer and asks it, never a user's flags. Which items a viewer
reaches is decided here too (`item_scope`), as a where-clause that the ORM's
statements and the read pool's compiled SQL both use.

The rules: every signed-in user holds the permissions on their own things
(`OWN_PERMISSIONS`); roles add the rest. A role is a named set of permissions
stored in `roles` and granted through `user_roles`, read with the caller in the
one statement that authenticates them (`AuthenticatedUser.role_permissions`), so
a change reaches every live session at its next request. The built-in `admin`
role holds every permission, whatever joins `Permission` later: it is no row,
and who holds it is stored as `users.is_superuser` (the contract's flag means
exactly "holds admin"). A new permission joins `Permission` (with its
description); a route names it with `requires(...)`, checked at import.

Nobody passes on what they do not hold (`may_grant`): a role is granted,
withdrawn, created, changed or deleted only by a viewer holding every permission
it holds.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, func, or_, true
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from app.exceptions import PermissionDenied
from app.models import AuthenticatedUser, Item, Role, User, UserRole


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


def parse_permission(name: str | Permission) -> Permission:
    """The permission a name names; ValueError (at import, for a route's
    `requires`) for any other name."""
    try:
        return Permission(name)
    except ValueError:
        known = ", ".join(p.value for p in Permission)
        raise ValueError(f"unknown permission {name!r}: one of {known}") from None


OWN_PERMISSIONS: Final = frozenset(
    {
        Permission.PROFILE_READ,
        Permission.PROFILE_WRITE,
        Permission.ITEMS_READ,
        Permission.ITEMS_WRITE,
    }
)
# The built-in admin role.
ADMIN_ROLE: Final = "admin"
ADMIN_ROLE_DESCRIPTION: Final = "Built in: every permission, including any added later"
ADMIN_PERMISSIONS: Final = frozenset(Permission)
_BY_NAME: Final = {p.value: p for p in Permission}


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, with what rights: built from the current user's lookup
    (`viewer_of`), never by a query of its own."""

    id: int
    is_active: bool
    permissions: frozenset[Permission]
    # The session the caller's access token names; None for an API key.
    session_id: uuid.UUID | None
    # The API key the caller sent, if that is how they authenticated.
    api_key_id: uuid.UUID | None = None

    @property
    def by_api_key(self) -> bool:
        return self.api_key_id is not None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """PermissionDenied (403, "Not enough privileges") unless the viewer holds it."""
        if permission not in self.permissions:
            raise PermissionDenied()


def role_permissions(names: Iterable[str]) -> frozenset[Permission]:
    """Stored permission names as permissions; a name this code no longer knows
    (a permission removed since) grants nothing."""
    return frozenset(_BY_NAME[name] for name in names if name in _BY_NAME)


def held_permissions(*, admin: bool, from_roles: Iterable[str]) -> frozenset[Permission]:
    """The permissions of a user who holds the admin role or not, and other roles
    holding `from_roles`: their own things', and every role's."""
    if admin:
        return ADMIN_PERMISSIONS
    granted = role_permissions(from_roles)
    return OWN_PERMISSIONS | granted if granted else OWN_PERMISSIONS


def permissions_of(user: AuthenticatedUser) -> frozenset[Permission]:
    """What the request may do: what the user holds now, narrowed to the scopes
    of the API key it came with (a role withdrawn narrows every key at once)."""
    held = held_permissions(admin=user.is_superuser, from_roles=user.role_permissions)
    if user.key_scopes is None:
        return held
    return held & role_permissions(user.key_scopes)


def may_grant(viewer: Viewer, permissions: Iterable[Permission]) -> bool:
    """Whether the viewer may pass on (grant, withdraw, define) a role holding
    these permissions: only if they hold every one."""
    return viewer.permissions.issuperset(permissions)


def lacking(viewer: Viewer, permissions: Iterable[Permission]) -> list[Permission]:
    """The permissions the viewer does not hold, in `Permission`'s order."""
    wanted = set(permissions)
    return [p for p in Permission if p in wanted and p not in viewer.permissions]


def viewer_of(user: AuthenticatedUser) -> Viewer:
    return Viewer(
        id=user.id,
        is_active=user.is_active,
        permissions=permissions_of(user),
        session_id=user.session_id,
        api_key_id=user.api_key_id,
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


# --- Where roles are stored ---------------------------------------------------------

# The permissions of every role a user holds, as one array: a correlated subquery
# of the statement that reads the user (app/auth/service.py), one index scan of
# user_roles' primary key (none for a user without roles).
ROLE_PERMISSIONS: Final = "role_permissions"


def role_permissions_column() -> ColumnElement[Any]:
    permission = func.unnest(col(Role.permissions)).label("permission")
    return func.array(
        select_columns(permission)
        .select_from(UserRole)
        .join(Role, col(Role.id) == col(UserRole.role_id))
        .where(col(UserRole.user_id) == col(User.id))
        .correlate(User)
        .scalar_subquery(),
        type_=ARRAY(String()),
    ).label(ROLE_PERMISSIONS)


def holders_of(permission: Permission) -> ColumnElement[bool]:
    """A where-clause on `users`: the accounts holding the permission (active or
    not), through the admin role or any other."""
    if permission in OWN_PERMISSIONS:
        return true()
    granted_by_a_role = (
        select_columns(col(UserRole.user_id))
        .join(Role, col(Role.id) == col(UserRole.role_id))
        .where(col(Role.permissions).any_() == permission.value)
    )
    return or_(col(User.is_superuser), col(User.id).in_(granted_by_a_role))


# --- Where the built-in admin role is stored ----------------------------------------

# The accounts that hold the admin role, and those of them that can use it.
ADMIN_HOLDERS: Final[ColumnElement[bool]] = col(User.is_superuser).is_(True)
ACTIVE_ADMINS: Final[ColumnElement[bool]] = and_(col(User.is_superuser), col(User.is_active))


def holds_admin_role(user: User | AuthenticatedUser) -> bool:
    return user.is_superuser


def admin_role_columns(*, granted: bool) -> dict[str, bool]:
    """The admin role as a users row's columns, for an INSERT's values."""
    return {"is_superuser": granted}


def grant_admin_role(user: User, *, granted: bool) -> None:
    user.is_superuser = granted
