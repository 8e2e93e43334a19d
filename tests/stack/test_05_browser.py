"""A person's view: Chromium opens https://<domain>/docs and logs in with Authorize."""

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.stack.conftest import (
    ARTIFACTS,
    DOMAIN,
    NOTES,
    Stack,
    require_tool,
    run,
    timed,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
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


def browser_home(stack: Stack, tmp_path: Path) -> Path:
    """A fresh $HOME, where Chromium never ran (no NSS database yet), made to trust
    the ACME root the way docs/deploy.md tells a user: `make trust-ca`."""
    require_tool("certutil")
    assert stack.root_ca is not None
    run(
        ["scripts/stack.sh", "trust-ca", str(stack.root_ca)],
        env={**stack.env, "HOME": str(tmp_path)},
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
            requested: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("request", lambda request: requested.append(request.url))
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
                pytest.fail(f"Swagger UI did not render; requests that failed: {failed}")
            expect(page.locator(".opblock").first).to_be_visible()
            assert page.locator(".opblock").count() >= 10

            # Authorize: the OAuth2 password flow against /api/token/.
            page.locator("button.authorize").first.click()
            page.fill("#oauth_username", user["email"])
            page.fill("#oauth_password", user["password"])
            # The dialog also offers the cookie schemes (AccessCookie, CsrfHeader).
            page.get_by_role("button", name="Apply given OAuth2 credentials").click()
            expect(page.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible(
                timeout=15_000
            )
            page.locator(".auth-btn-wrapper button.btn-done").first.click()
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
    # Everything the page needed came from the stack itself: no CDN, no third party.
    elsewhere = [url for url in requested if urlsplit(url).hostname != DOMAIN]
    assert elsewhere == [], f"/docs loaded resources from elsewhere: {elsewhere}"
    assert screenshot.stat().st_size > 10_000
