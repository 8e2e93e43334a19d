"""How a cookie session travels over HTTP: the cookies' names and attributes,
and reading and writing them.

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

from fastapi import Request, Response

from app.auth.cookie_service import CookieSession, CsrfProof
from app.config import Settings

ACCESS_COOKIE = "__Host-access"
REFRESH_COOKIE = "__Secure-refresh"
CSRF_COOKIE = "__Host-csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_SESSION_PATH = "/api/auth/cookie"
# The login throttle's device cookie, as `/api/token/` sets it, for this login.
DEVICE_COOKIE = "login_device"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _set(
    response: Response, name: str, value: str, *, max_age: int, path: str, httponly: bool
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=True,
        httponly=httponly,
        samesite="strict",
    )


def set_session_cookies(response: Response, session: CookieSession, settings: Settings) -> None:
    session_seconds = int(settings.REFRESH_TOKEN_TTL.total_seconds())
    _set(
        response,
        ACCESS_COOKIE,
        session.pair.access_token,
        max_age=int(settings.ACCESS_TOKEN_TTL.total_seconds()),
        path="/",
        httponly=True,
    )
    _set(
        response,
        REFRESH_COOKIE,
        session.pair.refresh_token,
        max_age=session_seconds,
        path=COOKIE_SESSION_PATH,
        httponly=True,
    )
    _set(
        response, CSRF_COOKIE, session.csrf_token, max_age=session_seconds, path="/", httponly=False
    )


def clear_session_cookies(response: Response) -> None:
    """Expire the three cookies. A deletion must carry the attributes the cookie
    was set with (the prefixes' Secure and Path), or the browser ignores it."""
    for name, path, httponly in (
        (ACCESS_COOKIE, "/", True),
        (REFRESH_COOKIE, COOKIE_SESSION_PATH, True),
        (CSRF_COOKIE, "/", False),
    ):
        response.delete_cookie(name, path=path, secure=True, httponly=httponly, samesite="strict")


def remember_device(response: Response, device_token: str | None, settings: Settings) -> None:
    if device_token is None:
        return
    _set(
        response,
        DEVICE_COOKIE,
        device_token,
        max_age=int(settings.DEVICE_TOKEN_TTL.total_seconds()),
        path=COOKIE_SESSION_PATH,
        httponly=True,
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
