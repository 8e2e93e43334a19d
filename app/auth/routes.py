"""Routes of the token flow for bearer clients: `/api/auth/…` and `/api/token/…`.
Each reads its request, makes one service call and answers through the bearer
transport (app/auth/bearer.py)."""

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.auth import service as auth_service
from app.auth.bearer import BearerTransport
from app.auth.proofs import PasskeyProof, PasswordProof, SecondStepProof
from app.auth.service import SecondStepChallenge
from app.auth.transports import (
    SECOND_STEP_RESPONSE,
    device_cookie,
    no_store,
    second_step_required,
)
from app.dependencies import (
    CurrentUser,
    DbSession,
    ReaderDep,
    SettingsDep,
    client_of,
    requires,
    session_only,
)
from app.exceptions import (
    ApiKeyRefused,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidSecondStep,
    NotAuthenticated,
    NotFound,
    PasskeyRefused,
    TooManyAttempts,
    error_responses,
)
from app.policy import Permission, Viewer
from app.schema.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, NewApiKey
from app.schema.auth import (
    PasswordForm,
    PasswordLogin,
    RefreshRequest,
    RegisterOut,
    SessionOut,
    TokenPair,
    Verified,
    VerifyRequest,
)
from app.schema.passkeys import PasskeyLogin, credential_json
from app.schema.second_factor import SecondStepLogin
from app.schema.users import UserOut, UserRegister
from app.services import api_keys as api_keys_service

auth_router = APIRouter(prefix="/api/auth", tags=["auth"], dependencies=[Depends(no_store)])
token_router = APIRouter(prefix="/api/token", tags=["auth"], dependencies=[Depends(no_store)])

DeviceCookie = Annotated[str | None, device_cookie("client")]


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _validated_json(request: Request) -> PasswordLogin:
    """Parsed by the standard library, as FastAPI parses every other JSON body (a
    lone surrogate escape is then refused by the field that holds it, as
    everywhere); what it cannot parse, pydantic's parser reports (`json_invalid`,
    with the position)."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return PasswordLogin.model_validate_json(raw)
    return PasswordLogin.model_validate(body)


async def read_login(request: Request) -> PasswordLogin:
    """The OAuth2 password form (what *Authorize* in /docs sends) or a JSON body:
    FastAPI reads one body type per operation, so this one reads its own. Either is
    validated as a model; pydantic's errors become the usual 422."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            return await _validated_json(request)
        if content_type in FORM_TYPES:
            form = await request.form()
            return PasswordForm.model_validate(dict(form)).as_login()
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            error["loc"] = ("body", *error["loc"])
        raise RequestValidationError(errors) from None
    raise RequestValidationError(
        [
            {
                "type": "content_type",
                "loc": ("body",),
                "msg": "Send an OAuth2 password form (application/x-www-form-urlencoded) or JSON",
                "input": content_type,
            }
        ]
    )


@auth_router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisterOut,
    summary="Register and receive a token pair",
    responses=error_responses(EmailTaken),
)
async def register(
    request: Request, data: UserRegister, response: Response, db: DbSession, settings: SettingsDep
) -> RegisterOut:
    """Create an account and log it in at once: the answer carries the new **user**
    and an **access/refresh token pair**, as `/api/token/` would."""
    login = await auth_service.register(
        db=db,
        settings=settings,
        email=data.email,
        password=data.password,
        full_name=data.full_name,
        client=client_of(request),
    )
    pair = BearerTransport.login(response, login, settings)
    return RegisterOut(user=UserOut.model_validate(login.user), **pair.model_dump())


@token_router.post(
    "/",
    response_model=TokenPair,
    summary="Log in: trade email and password for a token pair",
    responses={
        **SECOND_STEP_RESPONSE,
        **error_responses(InvalidCredentials, TooManyAttempts, EmailNotVerified),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": PasswordForm.model_json_schema()},
                "application/json": {"schema": PasswordLogin.model_json_schema()},
            },
        }
    },
)
async def issue_tokens(
    request: Request,
    response: Response,
    credentials: Annotated[PasswordLogin, Depends(read_login)],
    db: DbSession,
    settings: SettingsDep,
    device: DeviceCookie = None,
) -> TokenPair | Response:
    """Accepts the **OAuth2 password form** (`username` is the email) — what the
    *Authorize* button sends — or JSON `{"email", "password"}`.

    An unknown email and a wrong password get the same `401`, in the same time.
    Failures are throttled (`429` with `Retry-After`): per email and client
    address, and per account from all addresses together. A client that logged
    in before holds a device cookie and is throttled on its own failures only.

    An account with a second factor answers `202` with a **challenge** instead of
    tokens: send it with a code to `POST /api/token/second-factor`.
    """
    proof = PasswordProof(email=credentials.email, password=credentials.password)
    outcome = await auth_service.sign_in(
        db=db, settings=settings, proof=proof, client=client_of(request), device_token=device
    )
    if isinstance(outcome, SecondStepChallenge):
        return second_step_required(outcome)
    return BearerTransport.login(response, outcome, settings)


@token_router.post(
    "/second-factor",
    response_model=TokenPair,
    summary="Log in, second step: a code for the login's challenge",
    responses=error_responses(InvalidSecondStep, TooManyAttempts),
)
async def second_factor(
    request: Request,
    response: Response,
    data: SecondStepLogin,
    db: DbSession,
    settings: SettingsDep,
    device: DeviceCookie = None,
) -> TokenPair:
    """The `challenge` a `202` login answered, with a **code** of the account's
    authenticator app (6 digits) or one of its **recovery codes**: the token
    pair, as `/api/token/` gives it.

    A code works once, a challenge too (the first right answer wins). A
    challenge dies after 5 codes, at its `expires_in`, or when the account's
    password changes (log in again). Every wrong code also counts against the
    login throttle of the account (`429`)."""
    proof = SecondStepProof.of(data.challenge, data.code)
    login = await auth_service.sign_in(
        db=db, settings=settings, proof=proof, client=client_of(request), device_token=device
    )
    return BearerTransport.login(response, login, settings)


@token_router.post(
    "/passkey",
    response_model=TokenPair,
    summary="Log in with a passkey: trade its assertion for a token pair",
    responses=error_responses(PasskeyRefused, TooManyAttempts, EmailNotVerified),
)
async def passkey_tokens(
    request: Request,
    response: Response,
    data: PasskeyLogin,
    db: DbSession,
    settings: SettingsDep,
    device: DeviceCookie = None,
) -> TokenPair:
    """The `ceremony` of `POST /api/auth/passkeys/login/options` with what
    `navigator.credentials.get()` answered (`credential.toJSON()`): the token
    pair, as `/api/token/` gives it. A passkey (the user verified on the
    device) is enough: no second step, even with a second factor on.

    The ceremony works once, whatever the answer; a refusal is a `401` saying
    why (start again with new options). Throttled like every login (`429`)."""
    proof = PasskeyProof(ceremony=data.ceremony, credential=credential_json(data.credential))
    login = await auth_service.sign_in(
        db=db, settings=settings, proof=proof, client=client_of(request), device_token=device
    )
    return BearerTransport.login(response, login, settings)


@token_router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Rotate: spend a refresh token for a new pair",
    responses=error_responses(NotAuthenticated),
)
async def refresh_tokens(
    request: Request, data: RefreshRequest, db: DbSession, settings: SettingsDep
) -> TokenPair:
    """Each refresh token works **once**. Presenting one that was already spent
    revokes its whole session (RFC 9700 §4.14.2): log in again. The one exception
    is a double submit: the same token again from the same address within a
    couple of seconds is refused without ending the session."""
    return await auth_service.refresh(
        db=db,
        settings=settings,
        refresh_token=data.refresh_token,
        client=client_of(request),
    )


@token_router.post(
    "/verify",
    response_model=Verified,
    summary="Check an access token",
    responses=error_responses(NotAuthenticated),
)
async def verify_token(data: VerifyRequest, reader: ReaderDep, settings: SettingsDep) -> Verified:
    """`200 {}` when the token is a valid, unrevoked access token of an active user."""
    await auth_service.user_from_access_token(reader=reader, settings=settings, token=data.token)
    return Verified()


@auth_router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out one session",
    responses=error_responses(NotAuthenticated),
)
async def logout(data: RefreshRequest, db: DbSession, settings: SettingsDep) -> None:
    """Revokes the session the refresh token belongs to — every token rotated from
    it, and its access tokens too."""
    await auth_service.logout(db=db, settings=settings, refresh_token=data.refresh_token)


@auth_router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out everywhere",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
async def logout_all(
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))], db: DbSession
) -> None:
    """Revokes **every** session of the caller; their access tokens stop working now."""
    await auth_service.logout_everywhere(db=db, viewer=viewer)


@auth_router.get(
    "/sessions",
    response_model=list[SessionOut],
    summary="List my sessions",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
    dependencies=[Depends(requires(Permission.PROFILE_READ))],
)
async def list_sessions(user: CurrentUser, reader: ReaderDep) -> list[SessionOut]:
    """The caller's **live** sessions (not ended, not expired), newest first: where
    and with what each logged in and last refreshed. `current` marks the session
    of the token that sent this request."""
    return await auth_service.list_sessions(reader=reader, user=user)


SessionId = Annotated[uuid.UUID, Path(description="A session's `id`, from the list.")]


@auth_router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of my sessions",
    responses=error_responses(NotAuthenticated, ApiKeyRefused, NotFound),
)
async def end_session(
    session_id: SessionId,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
) -> None:
    """Ends the session **at once**: its refresh token and its access tokens stop
    working. The current session may be ended too (a logout). An id that is not
    one of the caller's live sessions is a `404`."""
    await auth_service.end_session(db=db, viewer=viewer, session_id=session_id)


# --- API keys -------------------------------------------------------------------------

ApiKeyId = Annotated[uuid.UUID, Path(description="An API key's `id`, from the list.")]


@auth_router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create an API key",
    responses={
        **error_responses(NotAuthenticated, ApiKeyRefused),
        403: {
            **error_responses(ApiKeyRefused)[403],
            "description": "Sent with an API key, or a scope the caller does not hold",
        },
    },
)
async def create_api_key(
    data: ApiKeyCreate,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
) -> ApiKeyCreated:
    """A personal access token, sent as `Authorization: Bearer <key>`. The
    answer shows the **key once**: only its hash is kept. Its `scopes` must be
    permissions the caller holds (`403`); at each request the key may do what
    its scopes **and** its owner's permissions at that moment allow. A key never
    creates keys, changes a password, an email or roles, nor ends sessions
    (`403`). Only a signed-in session may create one."""
    return await api_keys_service.create_key(
        db=db, viewer=viewer, request=NewApiKey.from_request(data)
    )


@auth_router.get(
    "/api-keys",
    response_model=list[ApiKeyOut],
    summary="List my API keys",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
async def list_api_keys(
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_READ))], reader: ReaderDep
) -> list[ApiKeyOut]:
    """The caller's keys, newest first, never the key itself: its `prefix` tells
    them apart, `last_used_at` (to the minute) when it was last used."""
    return await api_keys_service.list_keys(reader=reader, user_id=viewer.id)


@auth_router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of my API keys",
    responses=error_responses(NotAuthenticated, ApiKeyRefused, NotFound),
)
async def revoke_api_key(
    key_id: ApiKeyId,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
) -> None:
    """The key stops working **at once**. Another user's key id is a `404`, like
    a missing one."""
    await api_keys_service.revoke_key(db=db, viewer=viewer, user_id=viewer.id, key_id=key_id)
