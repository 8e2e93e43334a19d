"""`/api/users`: the caller's own account, and admin management of all accounts."""

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
)
from app.exceptions import (
    Conflict,
    EmailTaken,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooManyMailRequests,
    WrongPassword,
    error_responses,
)
from app.policy import Permission, Viewer
from app.routes.responses import PydanticJSONResponse
from app.schema.auth import SessionOut
from app.schema.common import MAX_ID, Page
from app.schema.users import (
    AdminUserUpdate,
    OwnProfileUpdate,
    PasswordChange,
    UserListParams,
    UserOut,
    UserUpdateAdmin,
    UserUpdateMe,
)
from app.services import users as users_service

router = APIRouter(
    prefix="/api/users",
    tags=["users"],
    dependencies=[Depends(get_current_user)],
    responses=error_responses(NotAuthenticated),
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
    dependencies=[Depends(requires(Permission.PROFILE_WRITE))],
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
    dependencies=[Depends(requires(Permission.PROFILE_WRITE))],
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
    dependencies=[Depends(requires(Permission.PROFILE_WRITE))],
)
async def delete_me(user: CurrentUser, db: DbSession) -> None:
    """Deletes the account **and all its items**."""
    await users_service.delete_user(db=db, user_id=user.id)


@router.get(
    "/",
    response_model=Page[UserOut],
    summary="List users (admin)",
    responses=ADMIN_ERRORS,
    dependencies=[Depends(requires(Permission.USERS_READ))],
)
async def list_users(
    reader: ReaderDep, params: Annotated[UserListParams, Query()]
) -> PydanticJSONResponse:
    return PydanticJSONResponse(await users_service.list_users(reader=reader, params=params))


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
    dependencies=[Depends(requires(Permission.USERS_WRITE))],
)
async def update_user(
    user_id: UserId, data: UserUpdateAdmin, db: DbSession, settings: SettingsDep
) -> UserOut:
    """An admin may also set `is_active` and `is_superuser`. Deactivating a user
    ends their sessions at once. The last active superuser cannot be demoted."""
    updated = await users_service.update_user(
        db=db,
        settings=settings,
        user_id=user_id,
        command=AdminUserUpdate.from_request(data),
    )
    return UserOut.model_validate(updated)


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
    dependencies=[Depends(requires(Permission.USERS_SESSIONS))],
)
async def end_user_sessions(user_id: UserId, db: DbSession) -> None:
    """Ends **every** session of the user at once, access tokens included, and any
    login of theirs still in flight, without deactivating the account: they can
    log in again (deactivate them with `PATCH` to keep them out)."""
    await users_service.end_user_sessions(db=db, user_id=user_id)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user (admin)",
    responses={**ADMIN_ERRORS, **error_responses(Conflict)},
    dependencies=[Depends(requires(Permission.USERS_WRITE))],
)
async def delete_user(user_id: UserId, db: DbSession) -> None:
    await users_service.delete_user(db=db, user_id=user_id)
