"""Cookie sessions for browsers: the token flow of app/auth/service.py (the same
login, throttling, rotation, reuse detection and revocation), with a CSRF token
bound to each session (app/auth/csrf.py). Only the transport differs: the routes
put the tokens in cookies instead of the body.
"""

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import csrf, tokens
from app.auth import service as auth_service
from app.auth.sessions import Client
from app.config import Settings
from app.database.reads import ReadPool
from app.exceptions import NotAuthenticated
from app.models import AuthenticatedUser, User
from app.schema.auth import TokenPair


@dataclass(frozen=True, slots=True)
class CsrfProof:
    """What a request carried to prove it comes from the app's pages."""

    header: str | None
    cookie: str | None


@dataclass(frozen=True, slots=True)
class CookieSession:
    """A token pair to set as cookies, and the session's CSRF token."""

    pair: TokenPair
    csrf_token: str


@dataclass(frozen=True, slots=True)
class CookieLogin:
    session: CookieSession
    user: User
    device_token: str | None


def _session_of(token: str, *, settings: Settings, expected: tokens.TokenType) -> uuid.UUID:
    try:
        return tokens.decode_token(token, settings=settings, expected_type=expected).session_id
    except tokens.InvalidToken as exc:
        raise NotAuthenticated() from exc


def _refresh_token(token: str | None, *, settings: Settings) -> tuple[str, uuid.UUID]:
    """The refresh cookie's token and its session, or NotAuthenticated."""
    if not token:
        raise NotAuthenticated()
    return token, _session_of(token, settings=settings, expected=tokens.TokenType.REFRESH)


def _check(settings: Settings, session_id: uuid.UUID, proof: CsrfProof) -> str:
    """The session's CSRF token the request proved it holds."""
    csrf.check(settings, session_id, header=proof.header, cookie=proof.cookie)
    assert proof.header is not None  # csrf.check refuses a missing one
    return proof.header


async def login(
    *,
    db: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    client: Client,
    device_token: str | None,
) -> CookieLogin:
    """Exactly `/api/token/`'s login; then a CSRF token for the session it opened
    (read from the new access token, the one place the login writes its id)."""
    login = await auth_service.login(
        db=db,
        settings=settings,
        email=email,
        password=password,
        client=client,
        device_token=device_token,
    )
    session_id = _session_of(
        login.pair.access_token, settings=settings, expected=tokens.TokenType.ACCESS
    )
    return CookieLogin(
        session=CookieSession(pair=login.pair, csrf_token=csrf.issue(settings, session_id)),
        user=login.user,
        device_token=login.device_token,
    )


async def refresh(
    *,
    db: AsyncSession,
    settings: Settings,
    refresh_token: str | None,
    proof: CsrfProof,
    client: Client,
) -> CookieSession:
    """Rotate as `/api/token/refresh` does (a spent token revokes the session),
    once the request proved it comes from the session's pages: a refused CSRF
    token spends nothing. The session keeps its CSRF token, so a page's other
    requests in flight are not refused."""
    token, session_id = _refresh_token(refresh_token, settings=settings)
    csrf_token = _check(settings, session_id, proof)
    pair = await auth_service.refresh(db=db, settings=settings, refresh_token=token, client=client)
    return CookieSession(pair=pair, csrf_token=csrf_token)


async def logout(
    *, db: AsyncSession, settings: Settings, refresh_token: str | None, proof: CsrfProof
) -> None:
    """End the session at once (access cookie included), if the request proved it
    comes from the session's pages: another site cannot log the user out."""
    token, session_id = _refresh_token(refresh_token, settings=settings)
    _check(settings, session_id, proof)
    await auth_service.logout(db=db, settings=settings, refresh_token=token)


async def user_from_access_cookie(
    *, reader: ReadPool, settings: Settings, token: str, proof: CsrfProof | None
) -> AuthenticatedUser:
    """The user behind the access cookie, as for a bearer token; for an unsafe
    method (`proof` given) the CSRF token must be this session's too."""
    user = await auth_service.user_from_access_token(reader=reader, settings=settings, token=token)
    if proof is not None:
        _check(settings, user.session_id, proof)
    return user
