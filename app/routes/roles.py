"""`/api/permissions` and `/api/roles`: the permissions there are, and the roles
that hold them (granted at `PUT /api/users/{id}/roles`, app/routes/users.py)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from app.dependencies import DbSession, ReaderDep, get_current_user, requires, session_only
from app.exceptions import (
    BuiltinRole,
    Conflict,
    NotAuthenticated,
    PermissionDenied,
    RoleNameTaken,
    RoleNotFound,
    error_responses,
)
from app.policy import Permission, Viewer
from app.schema.roles import (
    ROLE_NAME_PATTERN,
    ROLE_NAME_RULE,
    PermissionOut,
    RoleCreate,
    RoleDefinition,
    RoleOut,
    RoleUpdate,
)
from app.services import roles as roles_service

permissions_router = APIRouter(prefix="/api/permissions", tags=["roles"])
router = APIRouter(
    prefix="/api/roles",
    tags=["roles"],
    dependencies=[Depends(get_current_user)],
    responses=error_responses(NotAuthenticated, PermissionDenied),
)
RoleNamePath = Annotated[
    str, Path(pattern=ROLE_NAME_PATTERN, description=f"The role's name: {ROLE_NAME_RULE}")
]
ReadRoles = Annotated[Viewer, Depends(requires(Permission.ROLES_MANAGE))]
# Changing roles is for a signed-in session only: never an API key.
ManageRoles = Annotated[Viewer, Depends(session_only(Permission.ROLES_MANAGE))]
CHANGE_ERRORS = {
    **error_responses(RoleNotFound),
    409: {
        **error_responses(Conflict)[409],
        "description": f"{BuiltinRole.detail}; or the change would leave no active admin "
        "or holder of roles.manage",
    },
}


@permissions_router.get("", response_model=list[PermissionOut], summary="List the permissions")
async def list_permissions() -> list[PermissionOut]:
    """Every permission (`resource.action`) a role may hold or an API key be
    scoped to, with what it allows. Every user holds `profile.read`,
    `profile.write`, `items.read` and `items.write` on their own things; roles
    add the rest. The list is the code's: the same for everyone, so no token
    is needed."""
    return roles_service.list_permissions()


@router.get("", response_model=list[RoleOut], summary="List the roles")
async def list_roles(_: ReadRoles, reader: ReaderDep) -> list[RoleOut]:
    """The built-in `admin` role (every permission) first, then every other by name."""
    return await roles_service.list_roles(reader=reader)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RoleOut,
    summary="Create a role",
    responses=error_responses(RoleNameTaken),
)
async def create_role(data: RoleCreate, viewer: ManageRoles, db: DbSession) -> RoleOut:
    """A role holding permissions the caller lacks is refused (`403`); a name in
    use, `admin` included, is a `409`; an unknown permission a `422`."""
    return await roles_service.create_role(
        db=db, viewer=viewer, definition=RoleDefinition.created(data)
    )


@router.put("/{name}", response_model=RoleOut, summary="Replace a role", responses=CHANGE_ERRORS)
async def replace_role(
    name: RoleNamePath, data: RoleUpdate, viewer: ManageRoles, db: DbSession
) -> RoleOut:
    """A new `description` and `permissions` (both replaced), effective at every
    holder's next request. The caller must hold every permission the role held
    and is to hold (`403`). The built-in `admin` role cannot be changed (`409`),
    nor a role whose change would leave no active holder of `roles.manage`."""
    return await roles_service.replace_role(
        db=db, viewer=viewer, definition=RoleDefinition.updated(name, data)
    )


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a role",
    responses=CHANGE_ERRORS,
)
async def delete_role(name: RoleNamePath, viewer: ManageRoles, db: DbSession) -> None:
    """Withdrawn from everyone holding it, at their next request. The caller must
    hold every permission it holds (`403`); not the built-in `admin` role, nor
    the role of the last active holder of `roles.manage` (`409`)."""
    await roles_service.delete_role(db=db, viewer=viewer, name=name)
