"""The caller's second factor: `/api/auth/totp…`. Setting it up, confirming,
disabling it and renewing its recovery codes is for a signed-in session only (an
API key is refused whatever its scopes); its state may be read with a key."""

from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.auth.transports import no_store
from app.dependencies import DbSession, SettingsDep, requires, session_only
from app.exceptions import (
    ApiKeyRefused,
    NoSecondFactor,
    NotAuthenticated,
    SecondFactorEnabled,
    TooManyCodeGuesses,
    WrongSecondFactorCode,
    error_responses,
)
from app.policy import Permission, Viewer
from app.schema.second_factor import CodeIn, ConfirmIn, RecoveryCodesOut, TotpSetup, TotpStatus
from app.services import second_factor as second_factor_service

router = APIRouter(prefix="/api/auth/totp", tags=["auth"], dependencies=[Depends(no_store)])

Reader = Annotated[Viewer, Depends(requires(Permission.PROFILE_READ))]
Owner = Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))]
# What a code check can answer besides success.
CODE_ERRORS = (NotAuthenticated, ApiKeyRefused, WrongSecondFactorCode, TooManyCodeGuesses)


@router.get(
    "",
    response_model=TotpStatus,
    summary="My second factor: on or off, recovery codes left",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
async def totp_status(viewer: Reader, db: DbSession) -> TotpStatus:
    """Whether logins ask for a TOTP code, and how many unused recovery codes are left."""
    return await second_factor_service.status(db=db, viewer=viewer)


@router.post(
    "/setup",
    response_model=TotpSetup,
    summary="Set up TOTP: a new secret to add to an authenticator app",
    responses=error_responses(NotAuthenticated, ApiKeyRefused, SecondFactorEnabled),
)
async def set_up_totp(viewer: Owner, db: DbSession, settings: SettingsDep) -> TotpSetup:
    """A new **secret**, shown this once, with its `otpauth://` URI and that URI as
    a **QR code** (SVG) for a phone to scan. Nothing changes for logins until a
    code from it is confirmed (`POST /api/auth/totp/confirm`); setting up again
    before that replaces the secret. `409` if a second factor is already enabled."""
    return await second_factor_service.set_up(db=db, settings=settings, viewer=viewer)


@router.post(
    "/confirm",
    response_model=RecoveryCodesOut,
    summary="Enable TOTP with a code from the new secret; get recovery codes",
    responses=error_responses(*CODE_ERRORS, NoSecondFactor),
)
async def confirm_totp(
    data: ConfirmIn, viewer: Owner, db: DbSession, settings: SettingsDep
) -> RecoveryCodesOut:
    """A current code of the app the secret was added to enables the second
    factor: every password login asks for a code from now on. The answer holds
    **ten recovery codes**, shown this once (only their hashes are kept): each
    works once in place of a code, should the phone be lost. A wrong code is a
    `400`; wrong codes are throttled (`429`)."""
    return await second_factor_service.confirm(
        db=db, settings=settings, viewer=viewer, code=data.code
    )


@router.post(
    "/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disable the second factor (with a code)",
    responses=error_responses(*CODE_ERRORS, NoSecondFactor),
)
async def disable_totp(data: CodeIn, viewer: Owner, db: DbSession, settings: SettingsDep) -> None:
    """A current code of the authenticator app, or an unused recovery code (spent),
    turns the second factor off: logins ask for the password alone again, and the
    recovery codes are void."""
    await second_factor_service.disable(db=db, settings=settings, viewer=viewer, code=data.code)


@router.post(
    "/recovery-codes",
    response_model=RecoveryCodesOut,
    summary="New recovery codes (with a code); the old ones stop working",
    responses=error_responses(*CODE_ERRORS, NoSecondFactor),
)
async def regenerate_recovery_codes(
    data: CodeIn, viewer: Owner, db: DbSession, settings: SettingsDep
) -> RecoveryCodesOut:
    """A current code of the authenticator app, or an unused recovery code, for
    **ten new recovery codes**, shown this once; every earlier one stops working."""
    return await second_factor_service.regenerate_recovery_codes(
        db=db, settings=settings, viewer=viewer, code=data.code
    )
