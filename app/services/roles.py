"""Roles: define them, grant them, and keep someone able to.

Every change of who holds what (a role granted or withdrawn, a role changed or
deleted, an admin demoted, deactivated or deleted) takes one advisory lock for
its transaction (`lock_role_holders`) and is checked before it commits
(`keep_role_holders`): of two such changes at once, the second waits for the
first and sees it, so between them they never take away the last active admin
or the last active holder of roles.manage.

Nobody passes on what they do not hold: a role is granted, withdrawn, defined,
changed or deleted only by a viewer holding every permission it holds
(app/policy.py `may_grant`).
"""

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.database.db import flush_unless_taken
from app.database.reads import ReadPool, driver_sql
from app.exceptions import (
    BuiltinRole,
    Conflict,
    LastRoleManager,
    NotFound,
    PermissionDenied,
    RoleNameTaken,
    RoleNotFound,
)
from app.models import AuthenticatedUser, Role, User, UserRole, utcnow
from app.policy import (
    ADMIN_HOLDERS,
    ADMIN_PERMISSIONS,
    ADMIN_ROLE,
    ADMIN_ROLE_DESCRIPTION,
    Permission,
    Viewer,
    grant_admin_role,
    held_permissions,
    holders_of,
    holds_admin_role,
    lacking,
    may_grant,
    role_permissions,
    role_permissions_column,
)
from app.schema.audit import EventType
from app.schema.roles import MyPermissions, PermissionOut, RoleDefinition, RoleOut
from app.services import audit

LAST_SUPERUSER = "The last active superuser cannot be removed, demoted or deactivated"
# Serialises every change that could take away the last active admin or the last
# active holder of roles.manage (the name is the one the last-superuser guard
# always took: replicas of the previous release serialise with this one).
ROLE_HOLDERS_LOCK = "users:superusers"


# --- The guard ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleHolders:
    """How many active accounts hold the admin role, and roles.manage."""

    admins: int
    managers: int


async def _count_role_holders(db: AsyncSession) -> RoleHolders:
    admins, managers = (
        await db.exec(
            select(
                func.count().filter(ADMIN_HOLDERS),
                func.count().filter(holders_of(Permission.ROLES_MANAGE)),
            ).where(col(User.is_active))
        )
    ).one()
    return RoleHolders(admins=admins, managers=managers)


async def lock_role_holders(db: AsyncSession) -> RoleHolders:
    """Take the lock (until the transaction ends) and count the holders; the
    caller makes its change, then `keep_role_holders`."""
    await db.exec(select(func.pg_advisory_xact_lock(func.hashtextextended(ROLE_HOLDERS_LOCK, 0))))
    return await _count_role_holders(db)


async def keep_role_holders(db: AsyncSession, before: RoleHolders) -> None:
    """Conflict if the change (flushed, not committed) left no active admin, or
    no active holder of roles.manage, where there was one."""
    await db.flush()
    after = await _count_role_holders(db)
    if before.admins and not after.admins:
        raise Conflict(LAST_SUPERUSER)
    if before.managers and not after.managers:
        raise LastRoleManager()


def _refuse_unless_may_grant(*, viewer: Viewer, permissions: frozenset[Permission]) -> None:
    if not may_grant(viewer, permissions):
        missing = ", ".join(p.value for p in lacking(viewer, permissions))
        raise PermissionDenied(
            f"Not enough privileges: the role holds permissions you lack ({missing})"
        )


async def permissions_held(*, db: AsyncSession, user_id: int) -> frozenset[Permission]:
    """Every permission the user holds now (as the request's lookup would read
    them); NotFound if there is no such user."""
    row = (
        await db.exec(
            select(ADMIN_HOLDERS, role_permissions_column()).where(col(User.id) == user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("User not found")
    admin, from_roles = row
    return held_permissions(admin=admin, from_roles=from_roles)


async def refuse_unless_outranks(*, db: AsyncSession, viewer: Viewer, user_id: int) -> None:
    """An account holding a permission the viewer lacks is changed or deleted only
    by someone holding it too (a users.write role cannot delete an admin)."""
    if user_id == viewer.id:
        return
    target = await permissions_held(db=db, user_id=user_id)
    if not may_grant(viewer, target):
        missing = ", ".join(p.value for p in lacking(viewer, target))
        raise PermissionDenied(
            f"Not enough privileges: the account holds permissions you lack ({missing})"
        )


def refuse_admin_change_unless_admin(*, viewer: Viewer) -> None:
    """Granting or withdrawing the admin role (`is_superuser`) needs every permission."""
    _refuse_unless_may_grant(viewer=viewer, permissions=ADMIN_PERMISSIONS)


# --- The catalogue ----------------------------------------------------------------------


def list_permissions() -> list[PermissionOut]:
    return [PermissionOut(name=p, description=p.description) for p in Permission]


_ADMIN_ROLE_OUT = RoleOut(
    name=ADMIN_ROLE,
    description=ADMIN_ROLE_DESCRIPTION,
    permissions=list(Permission),
    builtin=True,
)

_ROLES_SQL = driver_sql(
    select_columns(col(Role.name), col(Role.description), col(Role.permissions)).order_by(
        col(Role.name)
    )
)


def _role_out(name: str, description: str, permissions: list[str]) -> RoleOut:
    held = role_permissions(permissions)
    return RoleOut(
        name=name,
        description=description,
        permissions=[p for p in Permission if p in held],
        builtin=False,
    )


async def list_roles(*, reader: ReadPool) -> list[RoleOut]:
    """The built-in admin role first, then every other by name."""
    rows = await reader.fetch_all(_ROLES_SQL, {})
    return [_ADMIN_ROLE_OUT, *(_role_out(**row) for row in rows)]


def _stored(permissions: frozenset[Permission]) -> list[str]:
    return [p.value for p in Permission if p in permissions]


async def create_role(*, db: AsyncSession, viewer: Viewer, definition: RoleDefinition) -> RoleOut:
    if definition.name == ADMIN_ROLE:
        raise RoleNameTaken()
    _refuse_unless_may_grant(viewer=viewer, permissions=definition.permissions)
    role = Role(
        name=definition.name,
        description=definition.description,
        permissions=_stored(definition.permissions),
    )
    db.add(role)
    await flush_unless_taken(db, RoleNameTaken)
    _record_role(db, EventType.ROLE_CREATED, viewer=viewer, role=role)
    await db.commit()
    return _role_out(role.name, role.description, role.permissions)


def _record_role(db: AsyncSession, event: EventType, *, viewer: Viewer, role: Role) -> None:
    details = {"role": role.name, "description": role.description, "permissions": role.permissions}
    audit.record(db, event, actor=viewer, target=None, details=details)


async def _locked_role(db: AsyncSession, name: str) -> Role:
    if name == ADMIN_ROLE:
        raise BuiltinRole()
    role = (
        await db.exec(select(Role).where(col(Role.name) == name).with_for_update())
    ).one_or_none()
    if role is None:
        raise RoleNotFound()
    return role


async def replace_role(*, db: AsyncSession, viewer: Viewer, definition: RoleDefinition) -> RoleOut:
    """A new description and permissions, effective at every holder's next
    request. The viewer must hold every permission the role held and will hold."""
    before = await lock_role_holders(db)
    role = await _locked_role(db, definition.name)
    _refuse_unless_may_grant(
        viewer=viewer, permissions=role_permissions(role.permissions) | definition.permissions
    )
    role.description = definition.description
    role.permissions = _stored(definition.permissions)
    role.updated_at = utcnow()
    db.add(role)
    await keep_role_holders(db, before)
    _record_role(db, EventType.ROLE_UPDATED, viewer=viewer, role=role)
    await db.commit()
    return _role_out(role.name, role.description, role.permissions)


async def delete_role(*, db: AsyncSession, viewer: Viewer, name: str) -> None:
    """Withdrawn from every holder at once (ON DELETE CASCADE)."""
    before = await lock_role_holders(db)
    role = await _locked_role(db, name)
    _refuse_unless_may_grant(viewer=viewer, permissions=role_permissions(role.permissions))
    await db.delete(role)
    await keep_role_holders(db, before)
    _record_role(db, EventType.ROLE_DELETED, viewer=viewer, role=role)
    await db.commit()


# --- Who holds which ---------------------------------------------------------------------


async def set_user_roles(
    *, db: AsyncSession, viewer: Viewer, user_id: int, names: list[str]
) -> User:
    """The user holds exactly these roles (`admin` among them or not) from their
    next request on. Each role granted or withdrawn must hold only permissions
    the viewer holds; an unknown role is a 404 naming it."""
    wanted = set(names)
    before = await lock_role_holders(db)
    user = await db.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("User not found")
    wanted_roles = {
        role.name: role
        for role in (await db.exec(select(Role).where(col(Role.name).in_(wanted - {ADMIN_ROLE}))))
    }
    unknown = sorted(wanted - {ADMIN_ROLE} - set(wanted_roles))
    if unknown:
        raise RoleNotFound(f"Role not found: {', '.join(unknown)}")
    held_roles = {
        role.name: role
        for role in await db.exec(
            select(Role)
            .join(UserRole, col(UserRole.role_id) == col(Role.id))
            .where(col(UserRole.user_id) == user_id)
        )
    }
    changed: set[Permission] = set()
    for name in set(held_roles) ^ set(wanted_roles):
        role = held_roles.get(name) or wanted_roles[name]
        changed |= role_permissions(role.permissions)
    admin = ADMIN_ROLE in wanted
    held = set(held_roles) | ({ADMIN_ROLE} if holds_admin_role(user) else set())
    if admin != holds_admin_role(user):
        changed |= ADMIN_PERMISSIONS
    _refuse_unless_may_grant(viewer=viewer, permissions=frozenset(changed))
    withdrawn = [role.id for name, role in held_roles.items() if name not in wanted_roles]
    if withdrawn:
        await db.exec(
            delete(UserRole).where(
                col(UserRole.user_id) == user_id, col(UserRole.role_id).in_(withdrawn)
            )
        )
    granted = [role.id for name, role in wanted_roles.items() if name not in held_roles]
    if granted:
        await db.exec(
            insert(UserRole)
            .values([{"user_id": user_id, "role_id": role_id} for role_id in granted])
            .on_conflict_do_nothing()
        )
    if admin != holds_admin_role(user):
        grant_admin_role(user, granted=admin)
        user.updated_at = utcnow()
        db.add(user)
    await keep_role_holders(db, before)
    _record_grants(db, viewer=viewer, user_id=user_id, held=held, wanted=wanted)
    await db.commit()
    return user


def _record_grants(
    db: AsyncSession, *, viewer: Viewer, user_id: int, held: set[str], wanted: set[str]
) -> None:
    """The roles granted and those withdrawn, as two events (either may be none)."""
    for event, names in (
        (EventType.ROLES_GRANTED, wanted - held),
        (EventType.ROLES_REVOKED, held - wanted),
    ):
        if names:
            audit.record(db, event, actor=viewer, target=user_id, details={"roles": sorted(names)})


_ROLE_NAMES_SQL = driver_sql(
    select_columns(col(Role.name))
    .join(UserRole, col(UserRole.role_id) == col(Role.id))
    .where(col(UserRole.user_id) == bindparam("user_id"))
    .order_by(col(Role.name))
)


async def my_permissions(
    *, reader: ReadPool, user: AuthenticatedUser, viewer: Viewer
) -> MyPermissions:
    """The roles the caller holds (admin first) and the permissions the request's
    lookup gave them (`viewer`)."""
    rows = await reader.fetch_all(_ROLE_NAMES_SQL, {"user_id": user.id})
    roles = [row["name"] for row in rows]
    if holds_admin_role(user):
        roles.insert(0, ADMIN_ROLE)
    return MyPermissions(
        roles=roles, permissions=[p for p in Permission if p in viewer.permissions]
    )
