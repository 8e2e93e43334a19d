"""Sign in with an OpenID provider: `/api/auth/oidc/…`. A browser flow: `start`
sends the browser to the provider with the flow cookie set, the provider sends
it back to `callback`, which opens a cookie session (app/auth/cookies.py) and
sends it on to `redirect_to`. And the caller's links to providers, listed and
unlinked. And the list of providers, for a sign-in page's buttons.
docs/auth.md, "Sign in with OpenID Connect"."""

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import AfterValidator

from app.auth.cookies import CookieTransport
from app.auth.service import SecondStepChallenge
from app.auth.transports import no_store
from app.dependencies import (
    DbSession,
    OidcProvidersDep,
    SettingsDep,
    client_of,
    requires,
    session_only,
)
from app.exceptions import (
    ApiKeyRefused,
    EmailNotVerified,
    LastSignInMethod,
    NotAuthenticated,
    NotFound,
    OidcProviderFailed,
    OidcRefused,
    TooManyAttempts,
    error_responses,
)
from app.policy import Permission, Viewer
from app.schema.common import storable_text
from app.schema.oidc import (
    MAX_CALLBACK_VALUE_LENGTH,
    MAX_REDIRECT_LENGTH,
    OidcLinkOut,
    OidcProviderOut,
    same_origin_path,
)
from app.services import oidc_accounts as oidc_accounts_service
from app.services import oidc_sign_in as oidc_sign_in_service

OIDC_PATH = "/api/auth/oidc"
# The cookie binding a flow to the browser that started it: HttpOnly, Secure,
# sent only to its provider's callback, and SameSite=Lax, since the provider's
# redirect back is a top-level navigation from another site (Strict would drop it).
FLOW_COOKIE = "__Secure-oidc-flow"
# Where a sign-in that owes a second factor sends the browser: `redirect_to`,
# with the challenge in the fragment (never sent to a server, so in no log).
SECOND_STEP_FRAGMENT = "oidc_second_factor"

router = APIRouter(prefix=OIDC_PATH, tags=["auth"], dependencies=[Depends(no_store)])

ProviderName = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9][a-z0-9-]{0,31}$",
        description="A provider's name, as configured in OIDC_PROVIDERS (e.g. `google`).",
    ),
]
RedirectTo = Annotated[
    str,
    Query(
        max_length=MAX_REDIRECT_LENGTH,
        description="Where the browser goes once signed in: a path on this site "
        "(`/`, `/account?tab=2`), never another site.",
        examples=["/account"],
    ),
    AfterValidator(same_origin_path),
]
CallbackValue = Annotated[
    str | None,
    Query(max_length=MAX_CALLBACK_VALUE_LENGTH, description="From the provider."),
    AfterValidator(storable_text),
]
FlowCookie = Annotated[
    str | None,
    Cookie(alias=FLOW_COOKIE, description="Set by `start`: binds the flow to this browser."),
]


def _callback_path(provider: str) -> str:
    return f"{OIDC_PATH}/{provider}/callback"


def _expire_flow_cookie(response: Response, provider: str) -> None:
    response.delete_cookie(
        FLOW_COOKIE, path=_callback_path(provider), secure=True, httponly=True, samesite="lax"
    )


@router.get(
    "/providers",
    response_model=list[OidcProviderOut],
    summary="The OpenID providers one may sign in with",
)
async def list_providers(providers: OidcProvidersDep) -> list[OidcProviderOut]:
    """Each configured provider's name (for `/api/auth/oidc/{name}/start`) and what
    its sign-in button says, in the order of OIDC_PROVIDERS; empty when none is
    configured. Public: nothing of a provider's configuration (its issuer, client
    id or secret) is in it."""
    return [
        OidcProviderOut(name=provider.name, display_name=provider.config.display_name)
        for provider in providers.by_name.values()
    ]


@router.get(
    "/{provider}/start",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Sign in with an OpenID provider: go to it",
    responses={
        302: {"description": "To the provider's sign-in page, with the flow cookie set."},
        **error_responses(NotFound, OidcProviderFailed),
    },
)
async def start(
    provider: ProviderName,
    providers: OidcProvidersDep,
    settings: SettingsDep,
    redirect_to: RedirectTo = "/",
) -> RedirectResponse:
    """Open in the browser (a link or a navigation, not a fetch): it goes to the
    provider's sign-in page, then back to `…/callback`, and on to `redirect_to`,
    a path on this site (anything else is a `422`). The flow (its `state`,
    `nonce` and PKCE verifier) is bound to this browser by an HttpOnly cookie
    that lives OIDC_FLOW_TTL: only this browser can finish it."""
    started = await oidc_sign_in_service.start(
        providers=providers, settings=settings, provider=provider, redirect_to=redirect_to
    )
    response = RedirectResponse(started.authorization_url, status_code=status.HTTP_302_FOUND)
    response.set_cookie(
        FLOW_COOKIE,
        started.flow_cookie,
        max_age=int(settings.OIDC_FLOW_TTL.total_seconds()),
        path=_callback_path(provider),
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(
    "/{provider}/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Sign in with an OpenID provider: back from it",
    responses={
        303: {
            "description": "Signed in: the cookie session is set, on to `redirect_to`. Or the "
            f"account has a second factor: on to `redirect_to#{SECOND_STEP_FRAGMENT}=<challenge>`, "
            "no session yet."
        },
        **error_responses(
            OidcRefused, NotFound, OidcProviderFailed, TooManyAttempts, EmailNotVerified
        ),
    },
)
async def callback(
    request: Request,
    provider: ProviderName,
    providers: OidcProvidersDep,
    db: DbSession,
    settings: SettingsDep,
    flow: FlowCookie = None,
    code: CallbackValue = None,
    state: CallbackValue = None,
    error: CallbackValue = None,
) -> RedirectResponse:
    """Where the provider sends the browser back (register
    `https://<DOMAIN>/api/auth/oidc/<provider>/callback` with it). Only the browser
    that went through `start` finishes: the `state` must be its flow cookie's.
    The code is redeemed with the flow's PKCE verifier, the ID token verified
    (the provider's keys, issuer, audience, expiry, the flow's nonce), and the
    account found, linked or created (docs/auth.md): then the cookie session of
    `/api/auth/cookie/login`, and a `303` to `redirect_to`. Refused: `401`.

    An account with a second factor gets no session yet: the `303` carries the
    challenge in the fragment, `#oidc_second_factor=<challenge>`; the page sends it
    with a code to `POST /api/auth/cookie/second-factor`."""
    finished = await oidc_sign_in_service.finish(
        db=db,
        providers=providers,
        settings=settings,
        provider=provider,
        flow_cookie=flow,
        state=state,
        code=code,
        error=error,
        client=client_of(request),
        device_token=None,
    )
    outcome = finished.outcome
    if isinstance(outcome, SecondStepChallenge):
        target = f"{finished.redirect_to.split('#')[0]}#{SECOND_STEP_FRAGMENT}={outcome.challenge}"
        response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    else:
        response = RedirectResponse(finished.redirect_to, status_code=status.HTTP_303_SEE_OTHER)
        CookieTransport.login(response, outcome, settings)
    _expire_flow_cookie(response, provider)
    return response


@router.get(
    "/links",
    response_model=list[OidcLinkOut],
    summary="My links to OpenID providers",
    responses=error_responses(NotAuthenticated, ApiKeyRefused),
)
async def list_links(
    viewer: Annotated[Viewer, Depends(requires(Permission.PROFILE_READ))], db: DbSession
) -> list[OidcLinkOut]:
    """The providers' accounts that sign in to the caller's, oldest first."""
    return await oidc_accounts_service.list_links(db=db, user_id=viewer.id)


@router.delete(
    "/links/{provider}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unlink an OpenID provider",
    responses=error_responses(NotAuthenticated, ApiKeyRefused, NotFound, LastSignInMethod),
)
async def unlink(
    provider: ProviderName,
    viewer: Annotated[Viewer, Depends(session_only(Permission.PROFILE_WRITE))],
    db: DbSession,
) -> None:
    """The provider's account no longer signs in to the caller's. Never the last
    way in: an account with no password keeps its only link (`409`: set a
    password with password recovery first). Only a signed-in session may."""
    await oidc_accounts_service.unlink(db=db, viewer=viewer, provider=provider)
