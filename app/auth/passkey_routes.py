"""Passkeys: `/api/auth/passkeys/…`. Registering one (options, then the browser's
answer), listing, renaming and removing the caller's, and a sign-in's options.
The sign-in itself is a route per transport: `POST /api/token/passkey`
(app/auth/routes.py) and `POST /api/auth/cookie/passkey`
(app/auth/cookie_routes.py). docs/auth.md, "Passkeys"."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from app.auth.transports import no_store
from app.dependencies import DbSession, SettingsDep, requires, session_only
from app.exceptions import (
    ApiKeyRefused,
    LastSignInMethod,
    NotAuthenticated,
    NotFound,
    PasskeyRegistrationRefused,
    PasskeyTaken,
    error_responses,
)
from app.policy import Permission, Viewer
from app.schema.passkeys import CeremonyOptions, PasskeyOut, PasskeyRegister, PasskeyRename
from app.services import passkeys as passkeys_service

PASSKEYS_PATH = "/api/auth/passkeys"

router = APIRouter(prefix=PASSKEYS_PATH, tags=["auth"], dependencies=[Depends(no_store)])

PasskeyId = Annotated[uuid.UUID, Path(description="A passkey's `id`, from the list.")]


@router.post(
    "/register/options",
    response_model=CeremonyOptions,
    summary="Register a passkey: the options for the browser",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
async def registration_options(
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
    settings: SettingsDep,
) -> CeremonyOptions:
    """Starts registering a passkey for the caller (a signed-in session: bearer,
    or the cookie with its CSRF header; never an API key). Give `publicKey` to
    `navigator.credentials.create()` (as
    `PublicKeyCredential.parseCreationOptionsFromJSON(publicKey)`) and send
    its answer's `toJSON()` with `ceremony` to `POST /api/auth/passkeys`
    within PASSKEY_CEREMONY_TTL. The options ask for a discoverable credential
    with user verification, and exclude the caller's passkeys."""
    return await passkeys_service.registration_options(db=db, settings=settings, viewer=viewer)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PasskeyOut,
    summary="Register a passkey: the browser's answer",
    responses=error_responses(
        PasskeyRegistrationRefused, NotAuthenticated, ApiKeyRefused, PasskeyTaken
    ),
)
async def register(
    data: PasskeyRegister,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
    settings: SettingsDep,
) -> PasskeyOut:
    """The `ceremony` of `…/register/options` with what
    `navigator.credentials.create()` answered (`credential.toJSON()`), and
    optionally a `name`. Checked against the ceremony's challenge, this site's
    origins and relying party id, with the user verified: then the passkey signs
    in to the caller's account. The ceremony works once, for the account that
    started it (`400` otherwise, saying why); a passkey registered already is a `409`."""
    return await passkeys_service.register(
        db=db,
        settings=settings,
        viewer=viewer,
        ceremony=data.ceremony,
        credential=data.credential,
        name=data.name,
    )


@router.get(
    "",
    response_model=list[PasskeyOut],
    summary="List my passkeys",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
async def list_passkeys(
    viewer: Annotated[Viewer, Depends(requires(Permission.PROFILE_READ))], db: DbSession
) -> list[PasskeyOut]:
    """The caller's passkeys, oldest first: their names, when each was
    registered and last signed in with."""
    return await passkeys_service.list_passkeys(db=db, viewer=viewer)


@router.patch(
    "/{passkey_id}",
    response_model=PasskeyOut,
    summary="Rename one of my passkeys",
    responses=error_responses(NotAuthenticated, ApiKeyRefused, NotFound),
)
async def rename_passkey(
    passkey_id: PasskeyId,
    data: PasskeyRename,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
) -> PasskeyOut:
    """Another user's passkey id is a `404`, like a missing one."""
    return await passkeys_service.rename(
        db=db, viewer=viewer, passkey_id=passkey_id, name=data.name
    )


@router.delete(
    "/{passkey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove one of my passkeys",
    responses=error_responses(NotAuthenticated, ApiKeyRefused, NotFound, LastSignInMethod),
)
async def remove_passkey(
    passkey_id: PasskeyId,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
) -> None:
    """The passkey no longer signs in. Never the last way in: an account with no
    password, no OpenID link and no other passkey keeps it (`409`: set a password
    with password recovery first). Another user's passkey id is a `404`."""
    await passkeys_service.remove(db=db, viewer=viewer, passkey_id=passkey_id)


@router.post(
    "/login/options",
    response_model=CeremonyOptions,
    summary="Sign in with a passkey: the options for the browser",
)
async def login_options(db: DbSession, settings: SettingsDep) -> CeremonyOptions:
    """No account named: give `publicKey` to `navigator.credentials.get()` (as
    `PublicKeyCredential.parseRequestOptionsFromJSON(publicKey)`; or with
    `mediation: "conditional"` for autofill); the browser offers the
    user's passkeys for this site. Send its answer's `toJSON()` with `ceremony`
    to `POST /api/token/passkey` (a token pair) or `POST /api/auth/cookie/passkey`
    (a cookie session) within PASSKEY_CEREMONY_TTL."""
    return await passkeys_service.login_options(db=db, settings=settings)
