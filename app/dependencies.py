"""Dependencies written once and reused by the routers.

All are `async def`, even those that never await: FastAPI runs a plain `def`
dependency on a worker thread, a hop per dependency per request.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import api_keys, cookies, oidc
from app.auth import service as auth_service
from app.auth.sessions import Client
from app.config import Settings
from app.database.reads import ReadPool
from app.exceptions import ApiKeyRefused, NotAuthenticated
from app.models import AuthenticatedUser
from app.policy import Permission, Viewer, parse_permission, viewer_of
from app.services import audit

TOKEN_URL = "/api/token/"

# auto_error=False: a missing header gets our own 401 body and header.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    description="Log in with your email as the *username*.",
)


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (tests create apps with their own)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for the request's transaction; the service commits.
    It knows the request's client, for the events it records (app/services/audit.py)."""
    async with request.app.state.session_factory() as db:
        audit.attach_client(db, client_of(request))
        yield db


async def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_reader(request: Request) -> ReadPool:
    """For reads: the read pool's autocommit connections (app/database/reads.py)."""
    reader: ReadPool = request.app.state.reader
    return reader


async def get_oidc_providers(request: Request) -> oidc.Providers:
    """The configured OpenID providers, with the HTTP client they share (opened
    with the app's lifespan)."""
    providers: oidc.Providers = request.app.state.oidc
    return providers


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
OidcProvidersDep = Annotated[oidc.Providers, Depends(get_oidc_providers)]
DbSession = Annotated[AsyncSession, Depends(get_db)]
ReaderDep = Annotated[ReadPool, Depends(get_reader)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


def client_address(request: Request) -> str:
    """The peer's address. Behind Traefik, uvicorn has already put the client's
    address here from X-Forwarded-For, which it believes only from the proxy's
    addresses (FORWARDED_ALLOW_IPS, gunicorn.conf.py); from anyone else the header
    is ignored."""
    return request.client.host if request.client else "unknown"


def client_of(request: Request) -> Client:
    """The client as a session records it: its address and its User-Agent."""
    return Client.seen(
        address=client_address(request), user_agent=request.headers.get("user-agent")
    )


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AuthenticatedUser:
    """Every authenticated request runs this: it reads the app's state itself
    rather than through ReaderDep and SettingsDep, as each sub-dependency costs
    FastAPI a resolution per request.

    A bearer token first: an API key if it has a key's prefix
    (app/auth/api_keys.py), else an access token; only when no `Authorization`
    header was sent at all, a
    browser's access cookie, which must come with the session's CSRF token on
    unsafe methods (app/auth/cookies.py). A bearer needs none: another site
    cannot make a browser send one."""
    state = request.app.state
    if token:
        if api_keys.looks_like_key(token):
            return await auth_service.user_from_api_key(reader=state.reader, key=token)
        return await auth_service.user_from_access_token(
            reader=state.reader, settings=state.settings, token=token
        )
    if "authorization" in request.headers:
        # Sent, but no bearer token: refused, never traded for the cookie.
        raise NotAuthenticated("Not authenticated")
    cookie = cookies.access_cookie(request)
    if cookie is None:
        raise NotAuthenticated("Not authenticated")
    user = await auth_service.user_from_access_token(
        reader=state.reader, settings=state.settings, token=cookie
    )
    proof = cookies.csrf_proof(request)
    if proof is not None:
        assert user.session_id is not None  # an access token's
        cookies.check_csrf(state.settings, user.session_id, proof)
    return user


CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


# --- What a route requires (app/policy.py) ------------------------------------------


class Requirement:
    """A route's declared permission, as a dependency that yields the caller's
    Viewer or answers 403. It reads the same current-user lookup (FastAPI
    resolves get_current_user once per request): no query of its own.

    `api_keys=False` marks what only a signed-in session may do: create keys,
    change a password, an email or roles, end sessions. An API key is refused
    there (403) whatever its scopes."""

    def __init__(self, permission: Permission, *, api_keys: bool = True) -> None:
        self.permission = permission
        self.api_keys = api_keys

    async def __call__(self, user: CurrentUser) -> Viewer:
        viewer = viewer_of(user)
        if viewer.by_api_key and not (self.api_keys and viewer.can(self.permission)):
            raise ApiKeyRefused()
        viewer.require(self.permission)
        return viewer

    def __repr__(self) -> str:
        keys = "" if self.api_keys else ", api_keys=False"
        return f"requires({self.permission.value!r}{keys})"


def requires(permission: Permission | str, *, api_keys: bool = True) -> Requirement:
    """`Depends(requires(Permission.USERS_READ))` in a route's decorator, or
    `viewer: Annotated[Viewer, Depends(requires(...))]` in its signature. A name
    (`requires("users.read")`) is checked here, as the route is declared: an
    unknown one stops the app at import, never a request."""
    return Requirement(parse_permission(permission), api_keys=api_keys)


def session_only(permission: Permission) -> Requirement:
    """`requires(permission, api_keys=False)`: for a signed-in session only."""
    return requires(permission, api_keys=False)
