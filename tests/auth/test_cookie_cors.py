"""CORS with cookie sessions: a browser sends the cookies with a credentialed
cross-origin request, so only named origins may read answers (or send the CSRF
header); `*` and anything that is not an origin are refused at start-up."""

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.auth.cookie_sessions import cookie_login
from tests.conftest import CLIENT_ADDRESS, TEST_SECRET_KEY, app_with, client_at, register

APP_ORIGIN = "https://app.example"


def with_origins(origins: str) -> Settings:
    return Settings(
        _env_file=None, ENVIRONMENT="test", SECRET_KEY=TEST_SECRET_KEY, BACKEND_CORS_ORIGINS=origins
    )


@pytest.mark.parametrize(
    "origins",
    [
        "*",
        "https://app.example, *",
        "https://*.example",
        "https://app.example/spa",
        "app.example",
        "ftp://app.example",
        "https://app.example:99999",
        "https://user@app.example",
    ],
)
def test_anything_but_explicit_origins_stops_start_up(origins: str) -> None:
    with pytest.raises(ValidationError, match=r"BACKEND_CORS_ORIGINS: .* is not an origin"):
        with_origins(origins)


def test_origins_are_kept_as_browsers_send_them() -> None:
    origins = with_origins("https://app.example/, http://localhost:5173").BACKEND_CORS_ORIGINS
    assert origins == [APP_ORIGIN, "http://localhost:5173"]


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-csrf-token",
    }


async def test_a_named_origin_may_send_credentials_and_the_csrf_header_others_may_not(
    settings: Settings,
) -> None:
    async with (
        app_with(settings, BACKEND_CORS_ORIGINS=[APP_ORIGIN]) as app,
        client_at(app, CLIENT_ADDRESS) as client,
    ):
        allowed = await client.options("/api/items/", headers=preflight(APP_ORIGIN))
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
        assert "x-csrf-token" in allowed.headers["Access-Control-Allow-Headers"].lower()
        refused = await client.options("/api/items/", headers=preflight("https://evil.example"))
        assert refused.status_code == 400
        assert "Access-Control-Allow-Origin" not in refused.headers

        await register(client)
        browser = await cookie_login(client)
        for origin, readable in ((APP_ORIGIN, True), ("https://evil.example", False)):
            read = await client.get(
                "/api/users/me", headers={**browser.headers(csrf_header=None), "Origin": origin}
            )
            # The app answers; the browser hands the answer to the page only if allowed.
            assert read.status_code == 200
            assert (read.headers.get("Access-Control-Allow-Origin") == origin) is readable


async def test_without_origins_no_cors_headers_are_sent(client: httpx.AsyncClient) -> None:
    response = await client.options("/api/items/", headers=preflight(APP_ORIGIN))
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
