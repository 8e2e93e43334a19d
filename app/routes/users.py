"""`/api/users`: the caller's own account, and admin management of all accounts."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from app.dependencies import (
    CurrentUser,
    DbSession,
    ReaderDep,
    SettingsDep,
    client_address,
    get_current_user,
    requires,
    session_only,
)
from app.exceptions import (
    ApiKeyRefused,
    Conflict,
    EmailTaken,
    InvalidCursor,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooManyMailRequests,
    WrongPassword,
    error_responses,
)
from app.policy import Permission, Viewer
from app.routes.responses import PydanticJSONResponse
from app.schema.api_keys import ApiKeyOut
from app.schema.audit import EventFilter, EventPage
from app.schema.auth import SessionOut
from app.schema.common import MAX_ID, Page
from app.schema.roles import MyPermissions, UserRolesUpdate
from app.schema.users import (
    AdminUserUpdate,
    OwnProfileUpdate,
    PasswordChange,
    UserListParams,
    UserOut,
    UserUpdateAdmin,
    UserUpdateMe,
)
from app.services import api_keys as api_keys_service
from app.services import audit as audit_service
from app.services import roles as roles_service
from app.services import users as users_service

router = APIRouter(
    prefix="/api/users",
    tags=["users"],
    dependencies=[Depends(get_current_user)],
    # Admin routes document their own 403 (PermissionDenied).
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
ADMIN_ERRORS = error_responses(PermissionDenied, NotFound)
# Bounded like the integer column: a larger id is a 422, not a database error.
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description=f"The user's id, 1–{MAX_ID}.")]


@router.get(
    "/me",
    response_model=UserOut,
    summary="Who am I",
    dependencies=[Depends(requires(Permission.PROFILE_READ))],
)
async def read_me(user: CurrentUser) -> PydanticJSONResponse:
    return PydanticJSONResponse(UserOut.model_validate(user))


@router.patch(
    "/me",
    response_model=UserOut,
    summary="Update my name, or ask to change my email",
    responses=error_responses(EmailTaken, WrongPassword, TooManyMailRequests),
    dependencies=[Depends(session_only(Permission.PROFILE_WRITE))],
)
async def update_me(
    request: Request, data: UserUpdateMe, user: CurrentUser, db: DbSession, settings: SettingsDep
) -> UserOut:
    """Only `full_name`, `email` and `current_password` may be sent; any other
    field is a `422`. The name changes at once.

    A new `email` needs `current_password` (`400` without it or with a wrong
    one; guesses are throttled, `429`) and does **not** change the account yet:
    the answer still shows the current address. A link goes to the new address
    (`POST /api/auth/verify-email` spends it: the address becomes the account's,
    verified, and every session ends), and a notice goes to the current address
    with a "this wasn't me" link (`POST /api/auth/secure-account`). An address
    another account has is a `409`; mails to the new address count toward its
    mail limit (`429` with `Retry-After`)."""
    updated = await users_service.update_me(
        db=db,
        settings=settings,
        user=user,
        command=OwnProfileUpdate.from_request(data),
        client=client_address(request),
    )
    return UserOut.model_validate(updated)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password",
    responses=error_responses(WrongPassword),
    dependencies=[Depends(session_only(Permission.PROFILE_WRITE))],
)
async def change_my_password(
    data: PasswordChange, user: CurrentUser, db: DbSession, settings: SettingsDep
) -> None:
    """Ends **every** session, this one included: log in again with the new
    password. A notice goes to the account's address."""
    await users_service.change_password(
        db=db,
        settings=settings,
        user=user,
        current=data.current_password,
        new=data.new_password,
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete my account",
    responses=error_responses(Conflict),
)
async def delete_me(
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))], db: DbSession
) -> None:
    """Deletes the account **and all its items**. The last active admin, or the
    last active holder of `roles.manage`, cannot go (`409`)."""
    await users_service.delete_user(db=db, viewer=viewer, user_id=viewer.id)


@router.get(
    "/me/events",
    response_model=EventPage,
    summary="My account's security events",
    dependencies=[Depends(requires(Permission.PROFILE_READ))],
)
async def list_my_events(
    user: CurrentUser, reader: ReaderDep, query: Annotated[EventFilter, Query()]
) -> EventPage:
    """What happened to the caller's account, **newest first**, as the audit
    trail records it: sign-ins (failed ones too, with the address they came
    from), sessions ended, password and email changes, roles, API keys. What an
    administrator did shows who did it, not from where. Follow `next_cursor`
    for older pages."""
    return await audit_service.list_own_events(reader=reader, user_id=user.id, query=query)


@router.get(
    "/me/permissions",
    response_model=MyPermissions,
    summary="My roles and permissions",
)
async def read_my_permissions(
    user: CurrentUser,
    viewer: Annotated[Viewer, Depends(requires(Permission.PROFILE_READ))],
    reader: ReaderDep,
) -> MyPermissions:
    """The roles the caller holds and every permission they hold now: those on
    their own things, which every user holds, and every role's. A change to a
    role shows here, and takes effect, at the caller's next request."""
    return await roles_service.my_permissions(reader=reader, user=user, viewer=viewer)


@router.get(
    "/",
    response_model=Page[UserOut],
    summary="List users (admin)",
    responses={**ADMIN_ERRORS, **error_responses(InvalidCursor)},
    dependencies=[Depends(requires(Permission.USERS_READ))],
)
async def list_users(
    reader: ReaderDep, settings: SettingsDep, params: Annotated[UserListParams, Query()]
) -> PydanticJSONResponse:
    """Sorted and paginated like items: follow `next` with `cursor`."""
    return PydanticJSONResponse(
        await users_service.list_users(reader=reader, settings=settings, params=params)
    )


@router.get(
    "/{user_id}",
    response_model=UserOut,
    summary="Read a user (admin)",
    responses=ADMIN_ERRORS,
    dependencies=[Depends(requires(Permission.USERS_READ))],
)
async def read_user(user_id: UserId, db: DbSession) -> UserOut:
    return UserOut.model_validate(await users_service.get_user(db=db, user_id=user_id))


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    summary="Update a user (admin)",
    responses={**ADMIN_ERRORS, **error_responses(Conflict)},
)
async def update_user(
    user_id: UserId,
    data: UserUpdateAdmin,
    viewer: Annotated[Viewer, Depends(session_only(Permission.USERS_WRITE))],
    db: DbSession,
    settings: SettingsDep,
) -> UserOut:
    """An admin may also set `is_active` and `is_superuser` (which grants or
    withdraws the built-in `admin` role: only a caller holding every permission
    may). Deactivating a user ends their sessions at once. An account holding a
    permission the caller lacks is refused (`403`). The last active superuser,
    or the last active holder of `roles.manage`, cannot be demoted or
    deactivated (`409`)."""
    updated = await users_service.update_user(
        db=db,
        settings=settings,
        viewer=viewer,
        user_id=user_id,
        command=AdminUserUpdate.from_request(data),
    )
    return UserOut.model_validate(updated)


@router.put(
    "/{user_id}/roles",
    response_model=UserOut,
    summary="Set a user's roles",
    responses={**ADMIN_ERRORS, **error_responses(Conflict)},
)
async def set_user_roles(
    user_id: UserId,
    data: UserRolesUpdate,
    viewer: Annotated[Viewer, Depends(session_only(Permission.ROLES_MANAGE))],
    db: DbSession,
) -> UserOut:
    """The user holds exactly the roles named (`admin` is the built-in role
    `is_superuser` shows), from their next request on: every live session of
    theirs gains or loses the permissions at once. Each role granted or
    withdrawn must hold only permissions the caller holds (`403` otherwise); an
    unknown role is a `404` naming it; the last active admin or holder of
    `roles.manage` cannot lose it (`409`)."""
    user = await roles_service.set_user_roles(
        db=db, viewer=viewer, user_id=user_id, names=data.roles
    )
    return UserOut.model_validate(user)


@router.get(
    "/{user_id}/sessions",
    response_model=list[SessionOut],
    summary="List a user's sessions (admin)",
    responses=ADMIN_ERRORS,
)
async def list_user_sessions(
    user_id: UserId,
    viewer: Annotated[Viewer, Depends(requires(Permission.USERS_SESSIONS))],
    reader: ReaderDep,
) -> list[SessionOut]:
    """The user's live sessions, newest first, as `GET /api/auth/sessions` shows
    them to the user (`current` only on the admin's own session)."""
    return await users_service.list_user_sessions(reader=reader, viewer=viewer, user_id=user_id)


@router.delete(
    "/{user_id}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End all of a user's sessions (admin)",
    responses=ADMIN_ERRORS,
)
async def end_user_sessions(
    user_id: UserId,
    viewer: Annotated[Viewer, Depends(session_only(Permission.USERS_SESSIONS))],
    db: DbSession,
) -> None:
    """Ends **every** session of the user at once, access tokens included, and any
    login of theirs still in flight, without deactivating the account: they can
    log in again (deactivate them with `PATCH` to keep them out). An account
    holding a permission the caller lacks is refused (`403`)."""
    await users_service.end_user_sessions(db=db, viewer=viewer, user_id=user_id)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user (admin)",
    responses={**ADMIN_ERRORS, **error_responses(Conflict)},
)
async def delete_user(
    user_id: UserId,
    viewer: Annotated[Viewer, Depends(session_only(Permission.USERS_WRITE))],
    db: DbSession,
) -> None:
    """An account holding a permission the caller lacks is refused (`403`); the
    last active superuser, or holder of `roles.manage`, cannot be deleted (`409`)."""
    await users_service.delete_user(db=db, viewer=viewer, user_id=user_id)


ApiKeyId = Annotated[uuid.UUID, Path(description="An API key's `id`, from the user's list.")]


@router.get(
    "/{user_id}/api-keys",
    response_model=list[ApiKeyOut],
    summary="List a user's API keys (admin)",
    responses=ADMIN_ERRORS,
    dependencies=[Depends(requires(Permission.USERS_SESSIONS))],
)
async def list_user_api_keys(user_id: UserId, reader: ReaderDep) -> list[ApiKeyOut]:
    """As `GET /api/auth/api-keys` shows them to the user: never the key."""
    return await api_keys_service.list_user_keys(reader=reader, user_id=user_id)


@router.delete(
    "/{user_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a user's API key (admin)",
    responses=ADMIN_ERRORS,
)
async def revoke_user_api_key(
    user_id: UserId,
    key_id: ApiKeyId,
    viewer: Annotated[Viewer, Depends(session_only(Permission.USERS_SESSIONS))],
    db: DbSession,
) -> None:
    """The key stops working at once; a key of another user is a `404`."""
    await api_keys_service.revoke_key(db=db, viewer=viewer, user_id=user_id, key_id=key_id)
