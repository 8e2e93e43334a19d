"""The cookie transport: how a browser's session travels over HTTP. The cookies'
names and attributes, reading and writing them, and the CSRF token each unsafe
request must send (app/auth/csrf.py). The session itself is the bearer
clients' (app/auth/service.py): only the transport differs.

- `__Host-access`: the access token. HttpOnly (no script reads it), Secure,
  `Path=/`, no Domain: the `__Host-` prefix makes browsers refuse it otherwise,
  so no sibling subdomain can set or shadow it.
- `__Secure-refresh`: the refresh token, sent only to the cookie-session routes
  (`Path=/api/auth/cookie`: refresh, and logout, which must end the session even
  once the access cookie has expired). `__Host-` requires `Path=/`, hence
  `__Secure-`.
- `__Host-csrf`: the session's CSRF token, readable by the page's scripts (not
  HttpOnly) so they can copy it into the `X-CSRF-Token` header.

All three are `SameSite=Strict`: another site's pages, links and forms never
send them, and a page of the app's own site loses nothing (its API calls are
same-site). Max-Age follows the tokens: the access token's lifetime for the
access cookie, the refresh token's (the session's) for the others.
"""

import uuid
from dataclasses import dataclass

from fastapi import Request, Response

from app.auth import csrf, tokens
from app.auth.service import Login
from app.auth.transports import remember_device, set_cookie
from app.config import Settings
from app.exceptions import NotAuthenticated
from app.schema.auth import TokenPair
from app.schema.cookie_sessions import CookieLoginOut, CookieSessionOut
from app.schema.users import UserOut

ACCESS_COOKIE = "__Host-access"
REFRESH_COOKIE = "__Secure-refresh"
CSRF_COOKIE = "__Host-csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_SESSION_PATH = "/api/auth/cookie"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class CsrfProof:
    """What a request carried to prove it comes from the app's pages."""

    header: str | None
    cookie: str | None


@dataclass(frozen=True, slots=True)
class PresentedRefresh:
    """A refresh cookie whose request proved it comes from its session's pages."""

    token: str
    csrf_token: str


def check_csrf(settings: Settings, session_id: uuid.UUID, proof: CsrfProof) -> str:
    """The session's CSRF token the request proved it holds (else 403)."""
    csrf.check(settings, session_id, header=proof.header, cookie=proof.cookie)
    assert proof.header is not None  # csrf.check refuses a missing one
    return proof.header


def _set_session_cookies(
    response: Response, pair: TokenPair, csrf_token: str, settings: Settings
) -> None:
    session_seconds = int(tokens.RefreshToken.lifetime(settings).total_seconds())
    set_cookie(
        response,
        ACCESS_COOKIE,
        pair.access_token,
        max_age=int(tokens.AccessToken.lifetime(settings).total_seconds()),
        path="/",
        httponly=True,
    )
    set_cookie(
        response,
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=session_seconds,
        path=COOKIE_SESSION_PATH,
        httponly=True,
    )
    set_cookie(response, CSRF_COOKIE, csrf_token, max_age=session_seconds, path="/", httponly=False)


class CookieTransport:
    """The tokens in cookies, with a CSRF token bound to the session
    (`/api/auth/cookie/…`)."""

    DEVICE_PATH = COOKIE_SESSION_PATH

    @classmethod
    def login(cls, response: Response, login: Login, settings: Settings) -> CookieLoginOut:
        """The three cookies, the device cookie, and a new CSRF token for the
        session the login opened."""
        csrf_token = csrf.issue(settings, login.session_id)
        _set_session_cookies(response, login.pair, csrf_token, settings)
        remember_device(response, login.device_token, settings, path=cls.DEVICE_PATH)
        return CookieLoginOut(
            user=UserOut.model_validate(login.user),
            csrf_token=csrf_token,
            expires_in=login.pair.expires_in,
        )

    @staticmethod
    def presented_refresh(
        refresh_token: str | None, proof: CsrfProof, settings: Settings
    ) -> PresentedRefresh:
        """The refresh cookie, once the request proved it comes from the
        session's pages: a refused CSRF token spends nothing (401 without a
        valid refresh cookie, then 403)."""
        if not refresh_token:
            raise NotAuthenticated()
        session_id = tokens.RefreshToken.presented(refresh_token, settings=settings).session_id
        return PresentedRefresh(
            token=refresh_token, csrf_token=check_csrf(settings, session_id, proof)
        )

    @staticmethod
    def refreshed(
        response: Response, pair: TokenPair, presented: PresentedRefresh, settings: Settings
    ) -> CookieSessionOut:
        """The new pair's cookies; the session keeps its CSRF token, so a page's
        other requests in flight are not refused."""
        _set_session_cookies(response, pair, presented.csrf_token, settings)
        return CookieSessionOut(csrf_token=presented.csrf_token, expires_in=pair.expires_in)

    @staticmethod
    def logged_out(response: Response) -> None:
        """Expire the three cookies. A deletion must carry the attributes the
        cookie was set with (the prefixes' Secure and Path), or the browser
        ignores it."""
        for name, path, httponly in (
            (ACCESS_COOKIE, "/", True),
            (REFRESH_COOKIE, COOKIE_SESSION_PATH, True),
            (CSRF_COOKIE, "/", False),
        ):
            response.delete_cookie(
                name, path=path, secure=True, httponly=httponly, samesite="strict"
            )


def access_cookie(request: Request) -> str | None:
    return request.cookies.get(ACCESS_COOKIE) or None


def csrf_proof(request: Request) -> CsrfProof | None:
    """None for a safe method (it changes nothing, so needs no proof); else what
    the request carried."""
    if request.method in SAFE_METHODS:
        return None
    return CsrfProof(
        header=request.headers.get(CSRF_HEADER), cookie=request.cookies.get(CSRF_COOKIE)
    )
