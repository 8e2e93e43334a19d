"""A person's view: Chromium opens https://<domain>/docs and logs in with Authorize."""

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.stack.conftest import (
    ARTIFACTS,
    DOMAIN,
    NOTES,
    REPO,
    Stack,
    require_tool,
    run,
    timed,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SWAGGER_UI_DIST = REPO / ".local" / "npm" / "node_modules" / "swagger-ui-dist"
# Flags for a closed network: no background calls home, no QUIC.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1",
]


def stand_in_for_unreachable_cdns(page: Any) -> list[str]:
    """Serve Swagger UI's files from npm's swagger-ui-dist when the CDN is unreachable.

    FastAPI's /docs page loads Swagger UI from cdn.jsdelivr.net. A user's browser
    reaches it; machines that reach only package registries do not, so there the
    same files come from the npm package (like the stand-in images). Nothing is
    substituted when the CDN answers or when the app serves the files itself.
    The list returned names what was stood in for.
    """
    served: list[str] = []
    if cdn_reachable():
        return served

    def from_npm(route: Any) -> None:
        name = route.request.url.split("?")[0].rsplit("/", 1)[-1]
        file = SWAGGER_UI_DIST / name
        if not file.is_file():
            route.abort()
            return
        served.append(route.request.url)
        route.fulfill(path=str(file))

    if not SWAGGER_UI_DIST.is_dir():
        pytest.fail(
            f"{SWAGGER_UI_DIST} is missing (scripts/test-stack.sh installs swagger-ui-dist)"
        )
    page.route("https://cdn.jsdelivr.net/npm/swagger-ui-dist@*/**", from_npm)
    page.route("https://fastapi.tiangolo.com/**", lambda route: route.abort())  # the favicon
    return served


def cdn_reachable() -> bool:
    try:
        socket.getaddrinfo("cdn.jsdelivr.net", 443)
    except OSError:
        return False
    return True


def browser_home(stack: Stack, tmp_path: Path) -> Path:
    """A fresh $HOME whose NSS database trusts the ACME root, as a user would add it."""
    certutil = require_tool("certutil")
    nssdb = tmp_path / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"])
    run(
        [
            certutil,
            "-d",
            f"sql:{nssdb}",
            "-A",
            "-t",
            "C,,",
            "-n",
            "acme-root",
            "-i",
            str(stack.root_ca),
        ]
    )
    return tmp_path


def test_swagger_ui_renders_and_authorize_logs_in(
    stack: Stack, user: dict[str, Any], tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    home = browser_home(stack, tmp_path)
    screenshot = ARTIFACTS / "swagger-authorized.png"
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(home)},
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = browser.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            stood_in = stand_in_for_unreachable_cdns(page)
            response = page.goto(stack.url("/docs"))
            assert response is not None
            assert response.status == 200
            # Swagger UI rendered the API from /openapi.json: title and operations.
            try:
                expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                    "FastAPI Stack", timeout=20_000
                )
            except AssertionError:
                page.screenshot(path=str(ARTIFACTS / "swagger-failed.png"))
                pytest.fail(
                    f"Swagger UI did not render; requests that failed: {failed} "
                    "(assets from a CDN cannot load where only the stack is reachable: "
                    "the app should serve Swagger UI's files itself)"
                )
            expect(page.locator(".opblock").first).to_be_visible()
            assert page.locator(".opblock").count() >= 10

            # Authorize: the OAuth2 password flow against /api/token/.
            page.locator("button.authorize").first.click()
            page.fill("#oauth_username", user["email"])
            page.fill("#oauth_password", user["password"])
            page.locator(".auth-btn-wrapper button.authorize").click()
            expect(page.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible(
                timeout=15_000
            )
            page.locator(".auth-btn-wrapper button.btn-done").click()
            expect(page.locator("button.authorize").first).to_have_class("btn authorize locked")

            # The token is used: GET /api/users/me answers with this user.
            operation = page.locator(".opblock-get", has_text="/api/users/me").first
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            result = operation.locator(".live-responses-table .response")
            expect(result.locator(".response-col_status").first).to_have_text("200", timeout=15_000)
            expect(result.first).to_contain_text(user["email"])
            operation.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    timed("Chromium: /docs, Authorize, /api/users/me", started)
    NOTES.append(f"screenshot: {screenshot}")
    if stood_in:
        NOTES.append(
            f"Swagger UI files served from npm's swagger-ui-dist (CDN unreachable): {stood_in}"
        )
    assert screenshot.stat().st_size > 10_000
