"""Browsers with cookie sessions, for the tests: log in at /api/auth/cookie/login,
read each Set-Cookie header as sent, and send chosen cookies and CSRF headers
explicitly (the client's own cookie jar is emptied, so nothing is sent unasked)."""

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import PASSWORD

ACCESS = "__Host-access"
REFRESH = "__Secure-refresh"
CSRF = "__Host-csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_PATH = "/api/auth/cookie"


def set_cookies(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """Each Set-Cookie header of the answer: name → its value and attributes
    (lower-case names; flags as True)."""
    cookies: dict[str, dict[str, Any]] = {}
    for header in response.headers.get_list("set-cookie"):
        pair, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = pair.partition("=")
        parsed: dict[str, Any] = {"value": value}
        for attribute in attributes:
            key, has_value, attribute_value = attribute.partition("=")
            parsed[key.lower()] = attribute_value if has_value else True
        cookies[name] = parsed
    return cookies


@dataclass(frozen=True)
class Browser:
    """What a cookie login left in a browser."""

    access: str
    refresh: str
    csrf: str
    user: dict[str, Any]

    def headers(
        self,
        *,
        access: str | None = "",
        refresh: str | None = None,
        csrf_cookie: str | None = "",
        csrf_header: str | None = "",
    ) -> dict[str, str]:
        """The request headers: the browser's own values by default (""), another
        value, or None to leave one out (the refresh cookie is left out unless given,
        as a browser sends it only to the cookie-session routes)."""
        cookies = {
            ACCESS: self.access if access == "" else access,
            REFRESH: refresh,
            CSRF: self.csrf if csrf_cookie == "" else csrf_cookie,
        }
        headers = {
            "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items() if value)
        }
        header = self.csrf if csrf_header == "" else csrf_header
        if header is not None:
            headers[CSRF_HEADER] = header
        return headers

    def session_headers(self, **overrides: str | None) -> dict[str, str]:
        """For /api/auth/cookie/refresh and /logout: the refresh cookie too."""
        return self.headers(**{"refresh": self.refresh, **overrides})


def browser_of(response: httpx.Response, user: dict[str, Any]) -> Browser:
    cookies = set_cookies(response)
    return Browser(
        access=cookies[ACCESS]["value"],
        refresh=cookies[REFRESH]["value"],
        csrf=cookies[CSRF]["value"],
        user=user,
    )


async def cookie_login(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> Browser:
    response = await client.post(
        "/api/auth/cookie/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return browser_of(response, response.json()["user"])


async def cookie_refresh(client: httpx.AsyncClient, browser: Browser) -> Browser:
    response = await client.post(f"{SESSION_PATH}/refresh", headers=browser.session_headers())
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return browser_of(response, browser.user)
