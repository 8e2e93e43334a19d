"""Cookie sessions for browsers: `/api/auth/cookie/…`. The bearer flow's own
sign-in, rotation and revocation (app/auth/service.py), with the tokens in
HttpOnly cookies and a CSRF token for the page (the cookie transport,
app/auth/cookies.py); and the OpenAPI description of cookie authentication on
every bearer route."""

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, FastAPI, Header, Request, Response, status

from app.auth import service as auth_service
from app.auth.cookies import (
    ACCESS_COOKIE,
    COOKIE_SESSION_PATH,
    CSRF_COOKIE,
    CSRF_HEADER,
    REFRESH_COOKIE,
    SAFE_METHODS,
    CookieTransport,
    CsrfProof,
    PresentedRefresh,
)
from app.auth.proofs import PasskeyProof, PasswordProof, SecondStepProof
from app.auth.service import SecondStepChallenge
from app.auth.transports import (
    SECOND_STEP_RESPONSE,
    device_cookie,
    no_store,
    second_step_required,
)
from app.dependencies import DbSession, SettingsDep, client_of, oauth2_scheme
from app.exceptions import (
    CsrfRejected,
    CsrfTokenMissing,
    EmailNotVerified,
    InvalidCredentials,
    InvalidSecondStep,
    NotAuthenticated,
    PasskeyRefused,
    TooManyAttempts,
    error_responses,
)
from app.schema.auth import PasswordLogin
from app.schema.cookie_sessions import CookieLoginOut, CookieSessionOut
from app.schema.passkeys import PasskeyLogin, credential_json
from app.schema.second_factor import SecondStepLogin

cookie_router = APIRouter(
    prefix=COOKIE_SESSION_PATH, tags=["auth"], dependencies=[Depends(no_store)]
)

DeviceCookie = Annotated[str | None, device_cookie("browser")]


@cookie_router.post(
    "/login",
    response_model=CookieLoginOut,
    summary="Log in a browser: the tokens as cookies",
    responses={
        **SECOND_STEP_RESPONSE,
        **error_responses(InvalidCredentials, TooManyAttempts, EmailNotVerified),
    },
)
async def cookie_login(
    request: Request,
    response: Response,
    credentials: PasswordLogin,
    db: DbSession,
    settings: SettingsDep,
    device: DeviceCookie = None,
) -> CookieLoginOut | Response:
    """For a browser app on this API's site. The same credentials, answers and
    throttling as `/api/token/`, but JSON only (`Content-Type: application/json`,
    which no form of another site can send, so it cannot log a browser into its
    own account). The tokens come as `HttpOnly` cookies; the answer holds the user
    and the session's **CSRF token**, to send as `X-CSRF-Token` with every unsafe
    request. Refresh at `/api/auth/cookie/refresh`, log out at `…/logout`.

    An account with a second factor answers `202` with a **challenge** and sets no
    cookie: send it with a code to `POST /api/auth/cookie/second-factor`."""
    proof = PasswordProof(email=credentials.email, password=credentials.password)
    outcome = await auth_service.sign_in(
        db=db, settings=settings, proof=proof, client=client_of(request), device_token=device
    )
    if isinstance(outcome, SecondStepChallenge):
        return second_step_required(outcome)
    return CookieTransport.login(response, outcome, settings)


@cookie_router.post(
    "/second-factor",
    response_model=CookieLoginOut,
    summary="Log in a browser, second step: a code for the login's challenge",
    responses=error_responses(InvalidSecondStep, TooManyAttempts),
)
async def cookie_second_factor(
    request: Request,
    response: Response,
    data: SecondStepLogin,
    db: DbSession,
    settings: SettingsDep,
    device: DeviceCookie = None,
) -> CookieLoginOut:
    """The `challenge` a `202` cookie login answered, with a code of the
    account's authenticator app or a recovery code: the cookies and CSRF token,
    as `/api/auth/cookie/login` gives them. JSON only; the rules of
    `POST /api/token/second-factor`."""
    proof = SecondStepProof.of(data.challenge, data.code)
    login = await auth_service.sign_in(
        db=db, settings=settings, proof=proof, client=client_of(request), device_token=device
    )
    return CookieTransport.login(response, login, settings)


@cookie_router.post(
    "/passkey",
    response_model=CookieLoginOut,
    summary="Log in a browser with a passkey: the tokens as cookies",
    responses=error_responses(PasskeyRefused, TooManyAttempts, EmailNotVerified),
)
async def cookie_passkey(
    request: Request,
    response: Response,
    data: PasskeyLogin,
    db: DbSession,
    settings: SettingsDep,
    device: DeviceCookie = None,
) -> CookieLoginOut:
    """The `ceremony` of `POST /api/auth/passkeys/login/options` with what
    `navigator.credentials.get()` answered (`credential.toJSON()`): the cookies
    and CSRF token, as `/api/auth/cookie/login` gives them. JSON only; the rules
    of `POST /api/token/passkey` (no second step, even with a second factor on)."""
    proof = PasskeyProof(ceremony=data.ceremony, credential=credential_json(data.credential))
    login = await auth_service.sign_in(
        db=db, settings=settings, proof=proof, client=client_of(request), device_token=device
    )
    return CookieTransport.login(response, login, settings)


# --- Refresh and logout: the refresh cookie, with the CSRF token ------------------

RefreshCookie = Annotated[
    str | None,
    Cookie(alias=REFRESH_COOKIE, description="Set by the login and each refresh; HttpOnly."),
]
CsrfCookie = Annotated[
    str | None, Cookie(alias=CSRF_COOKIE, description="The session's CSRF token.")
]
CsrfHeader = Annotated[
    str | None,
    Header(alias=CSRF_HEADER, description=f"The value of the `{CSRF_COOKIE}` cookie."),
]


async def posted_csrf_proof(
    csrf_header: CsrfHeader = None, csrf_cookie: CsrfCookie = None
) -> CsrfProof:
    """The CSRF header and cookie a refresh or logout carried (documented here, so
    OpenAPI lists them on both)."""
    return CsrfProof(header=csrf_header, cookie=csrf_cookie)


PostedCsrfProof = Annotated[CsrfProof, Depends(posted_csrf_proof)]


async def presented_refresh(
    settings: SettingsDep, proof: PostedCsrfProof, refresh_token: RefreshCookie = None
) -> PresentedRefresh:
    """The refresh cookie of a request that proved it comes from the session's
    pages: else 401 or 403, before anything is spent."""
    return CookieTransport.presented_refresh(refresh_token, proof, settings)


PresentedRefreshCookie = Annotated[PresentedRefresh, Depends(presented_refresh)]


@cookie_router.post(
    "/refresh",
    response_model=CookieSessionOut,
    summary="Rotate the cookies",
    responses=error_responses(NotAuthenticated, CsrfRejected),
)
async def cookie_refresh(
    request: Request,
    response: Response,
    presented: PresentedRefreshCookie,
    db: DbSession,
    settings: SettingsDep,
) -> CookieSessionOut:
    """Spends the refresh cookie for new access and refresh cookies, as
    `/api/token/refresh` does: each works **once**, and a spent one presented
    again ends the session (log in again). Needs the `X-CSRF-Token` header
    (`403` without it, nothing spent). The CSRF token stays the same."""
    pair = await auth_service.refresh(
        db=db, settings=settings, refresh_token=presented.token, client=client_of(request)
    )
    return CookieTransport.refreshed(response, pair, presented, settings)


@cookie_router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log a browser out",
    responses=error_responses(NotAuthenticated, CsrfRejected),
)
async def cookie_logout(
    response: Response, presented: PresentedRefreshCookie, db: DbSession, settings: SettingsDep
) -> None:
    """Ends the session **at once** (its access cookie stops working on the next
    request) and expires the three cookies. Needs the `X-CSRF-Token` header
    (`403` without it: another site cannot log anyone out)."""
    await auth_service.logout(db=db, settings=settings, refresh_token=presented.token)
    CookieTransport.logged_out(response)


# --- OpenAPI: cookie authentication wherever a bearer is accepted -----------------

ACCESS_SCHEME = "AccessCookie"
CSRF_SCHEME = "CsrfHeader"
SECURITY_SCHEMES = {
    ACCESS_SCHEME: {
        "type": "apiKey",
        "in": "cookie",
        "name": ACCESS_COOKIE,
        "description": "Browsers: the access cookie `POST /api/auth/cookie/login` sets "
        "(HttpOnly, Secure, SameSite=Strict). Used only when no bearer is sent. "
        "(The Authorize button cannot set it: in /docs, use the bearer.)",
    },
    CSRF_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": f"With the access cookie, every POST, PUT, PATCH and DELETE sends "
        f"the session's CSRF token (the `{CSRF_COOKIE}` cookie's value, also in the "
        "login and refresh answers); missing or not this session's: `403`, nothing "
        "done. Bearer requests need none.",
    },
}
CSRF_REFUSED = "or, authenticated by cookie: the CSRF token is missing or not this session's"


def _document_csrf_refusal(responses: dict[str, Any]) -> None:
    refusal = responses.get("403")
    if refusal is None:
        responses["403"] = {
            "description": CsrfRejected.detail,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorDetail"},
                    "example": {"detail": CsrfTokenMissing.detail},
                }
            },
        }
    elif CSRF_REFUSED not in refusal["description"]:
        refusal["description"] += f"; {CSRF_REFUSED}"


def document_cookie_auth(app: FastAPI) -> None:
    """Every operation that takes a bearer also takes the access cookie, with the
    CSRF header on unsafe methods: an alternative security requirement (OpenAPI's
    OR), and the 403 a refused CSRF token gets. Described here rather than by a
    cookie dependency: each dependency costs every request a resolution."""
    generate = app.openapi
    bearer = oauth2_scheme.scheme_name

    def openapi() -> dict[str, Any]:
        schema = generate()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if ACCESS_SCHEME in schemes:
            return schema  # already described: the document is built once, then cached
        schemes.update(SECURITY_SCHEMES)
        for operations in schema["paths"].values():
            for method, operation in operations.items():
                security = operation.get("security", [])
                if not any(bearer in requirement for requirement in security):
                    continue
                if method.upper() in SAFE_METHODS:
                    security.append({ACCESS_SCHEME: []})
                else:
                    security.append({ACCESS_SCHEME: [], CSRF_SCHEME: []})
                    _document_csrf_refusal(operation["responses"])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
