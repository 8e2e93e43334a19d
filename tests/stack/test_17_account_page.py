"""The account page (GET /account) in Chromium, through Traefik, against the real stack.

Chromium (trusting the ACME root as `make trust-ca` makes it, so the page is a
secure context with a real certificate) drives the page as a person would:

1. a password sign-in: who they are, this session listed;
2. the second factor: set up with the QR code shown and the secret read off the
   page (the code computed here from that secret, by the app's own TOTP module),
   the ten recovery codes; then a password sign-in asks for the second step, a
   fresh code signs in; a recovery code signs in; a code turns it off;
3. passkeys with Chromium's virtual authenticator (DevTools' WebAuthn domain: a
   CTAP2 platform authenticator holding discoverable credentials, the user
   verified): added, listed, renamed; "Sign in with a passkey" signs in with
   nothing typed and no second step although TOTP is on; removed; the audit
   trail (read with psql) holds the passkey sign-in;
4. sessions: a second browser signs in, the first sees both and ends the other,
   whose next call is refused.

Every page is watched: a console error, an uncaught exception or a CSP violation
(the `securitypolicyviolation` event) fails the test, and every request must stay
on the domain. Screenshots of each step: artifacts/stack/account-*.png.

Numbered to run before test_17_swarm (after the swarm has left, the next deploy
of the compose stack may fail).
"""

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.auth import totp
from tests.stack.conftest import (
    ARTIFACTS,
    DOMAIN,
    NOTES,
    Stack,
    register_user,
    timed,
)
from tests.stack.test_05_browser import CHROMIUM, CHROMIUM_ARGS, browser_home

PAGE = "/account"
# Chromium's line for an answer >= 400 to the page's own fetch; the page expects
# some (a signed-out visitor's GET /api/users/me is how it learns it is signed out).
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")
# Reports each CSP violation to the test: a binding is DevTools', not the page's
# script, so the page's policy does not stop it.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    source: event.sourceFile,
    line: event.lineNumber,
    sample: event.sample
  });
});
"""
FETCH_ME = """async () => {
    const response = await fetch('/api/users/me', {credentials: 'same-origin'});
    return response.status;
}"""
REFRESH = """async () => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('__Host-csrf='));
    const response = await fetch('/api/auth/cookie/refresh', {
        method: 'POST',
        credentials: 'same-origin',
        headers: {'X-CSRF-Token': csrf ? decodeURIComponent(csrf.split('=')[1]) : ''}
    });
    return response.status;
}"""
# The page's own policy (app/routes/pages.py), as the browser receives it through Traefik.
PAGE_POLICY = re.compile(
    r"^default-src 'none'; script-src 'nonce-[\w-]+'; style-src 'nonce-[\w-]+'; "
    r"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; "
    r"img-src data:$"
)


@dataclass
class Watch:
    """What went wrong on a browser context's pages: console errors, uncaught
    exceptions, CSP violations, requests that left the domain."""

    console_errors: list[dict[str, Any]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    expected_refusals: list[str] = field(default_factory=list)

    def attach(self, context: Any) -> None:
        context.expose_binding(
            "__reportCspViolation", lambda _source, report: self.violations.append(report)
        )
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("page", self.watch_page)

    def watch_page(self, page: Any) -> None:
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self.on_request)

    def on_console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.console_errors.append({"text": message.text, "url": message.location["url"]})

    def on_request(self, request: Any) -> None:
        if urlsplit(request.url).hostname != DOMAIN:
            self.elsewhere.append(request.url)

    def expect_refused(self, path: str) -> None:
        """An answer >= 400 at this path that a step expects (one each)."""
        self.expected_refusals.append(path)

    def check(self, step: str) -> None:
        """Nothing went wrong so far: each refused call was one a step expected."""
        unexpected = []
        for error in self.console_errors:
            matched = FAILED_LOAD.match(error["text"])
            path = urlsplit(error["url"]).path
            if matched and path in self.expected_refusals:
                self.expected_refusals.remove(path)
            else:
                unexpected.append(error)
        self.console_errors.clear()
        problems = {
            "console errors": unexpected,
            "uncaught exceptions": self.page_errors,
            "CSP violations": self.violations,
            "requests off the domain": self.elsewhere,
        }
        found = {name: items for name, items in problems.items() if items}
        assert not found, f"{step}: {found}"


@dataclass
class Browser:
    """Chromium, and where each context's problems are collected."""

    browser: Any
    watches: list[Watch] = field(default_factory=list)

    def new_page(self) -> tuple[Any, Watch]:
        context = self.browser.new_context(viewport={"width": 1100, "height": 1400})
        context.set_default_timeout(15_000)
        watch = Watch()
        watch.attach(context)
        self.watches.append(watch)
        return context.new_page(), watch


@contextmanager
def chromium(stack: Stack, home: Path) -> Iterator[Browser]:
    """Chromium trusting the ACME root. Started in the test itself, not in a
    fixture that outlives it: the sync API keeps an event loop running in this
    thread, where the suite's async fixtures run their own between tests."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    browser_home(stack, home)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)}
        )
        try:
            opened = Browser(browser)
            yield opened
            # Whatever came after a step's own check.
            for watch in opened.watches:
                watch.check("until Chromium closed")
        finally:
            browser.close()


def shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"account-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    NOTES.append(f"screenshot: {path}")
    return path


def open_account_page(stack: Stack, page: Any, watch: Watch, state: str) -> None:
    from playwright.sync_api import expect

    if state == "signed-out":
        watch.expect_refused("/api/users/me")  # how the page learns it
    response = page.goto(stack.url(PAGE))
    assert response is not None
    assert response.status == 200
    headers = response.headers
    assert PAGE_POLICY.match(headers["content-security-policy"]), headers
    assert headers["cache-control"] == "no-store"
    # Traefik's security headers leave the page's own (tests/security/test_pages.py).
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    expect(page.locator("body")).to_have_attribute("data-state", state)
    # A real certificate over https: WebAuthn and the Secure cookies need it.
    assert page.evaluate("window.isSecureContext") is True


def sign_in_with_password(page: Any, user: dict[str, Any]) -> None:
    page.fill("#login-email", user["email"])
    page.fill("#login-password", user["password"])
    page.click("#login-submit")


def expect_signed_in(page: Any, user: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    expect(page.locator("body")).to_have_attribute("data-state", "signed-in")
    expect(page.locator("#me-email")).to_have_text(user["email"])
    expect(page.locator("#login-error")).to_have_text("")


def sign_out(page: Any) -> None:
    from playwright.sync_api import expect

    page.click("#logout")
    expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
    expect(page.locator("#notice")).to_have_text("You are signed out.")
    # Signed out for the server too: the session's cookies are gone.
    cookies = {cookie["name"] for cookie in page.context.cookies(f"https://{DOMAIN}/api/")}
    assert "__Host-access" not in cookies, cookies


class Codes:
    """TOTP codes of a secret as an authenticator app shows them, at the real
    time (the stack's clock is this machine's). A code is accepted once: a step
    already used is waited out."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.last_step: int | None = None

    def fresh(self) -> str:
        while True:
            now = datetime.now(UTC)
            step = totp.step_at(now)
            if self.last_step is None or step > self.last_step:
                self.last_step = step
                return totp.code_at(self.secret, step)
            time.sleep(totp.STEP_SECONDS - now.timestamp() % totp.STEP_SECONDS + 0.2)


def set_up_totp(page: Any, name: str | None = None) -> tuple[Codes, list[str]]:
    """The second factor turned on on the page: the QR code and the secret shown,
    confirmed with a code of that secret; the ten recovery codes read."""
    from playwright.sync_api import expect

    page.click("#totp-setup-start")
    expect(page.locator("#totp-setup")).to_be_visible()
    # The QR code rendered under the page's CSP (img-src data:): decoded, with a size.
    page.wait_for_function(
        "() => { const img = document.getElementById('totp-qr');"
        " return img.complete && img.naturalWidth > 0 && img.naturalHeight > 0; }"
    )
    assert page.locator("#totp-qr").get_attribute("src").startswith("data:image/svg+xml")
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    if name:
        shot(page, name)
    codes = Codes(secret)
    page.fill("#totp-confirm-code", codes.fresh())
    page.click("#totp-confirm-submit")
    expect(page.locator("#recovery-codes")).to_be_visible()
    expect(page.locator("#recovery-codes-list li")).to_have_count(10)
    recovery = [text.strip() for text in page.locator("#recovery-codes-list li").all_inner_texts()]
    assert len(set(recovery)) == 10
    expect(page.locator("#notice")).to_have_text("The second factor is on.")
    expect(page.locator("#totp-status")).to_contain_text("On: signing in asks for a code.")
    expect(page.locator("#totp-setup")).to_be_hidden()
    return codes, recovery


def new_user(stack: Stack, label: str) -> dict[str, Any]:
    """A fresh account (the page has no registration: through the API), its
    registration's session ended, so the page's sessions are all it has."""
    user = register_user(stack, label)
    with stack.client() as client:
        response = client.post("/api/auth/logout", json={"refresh_token": user["refresh_token"]})
    assert response.status_code == 204, response.text
    return user


def user_id(user: dict[str, Any]) -> int:
    return int(user["user"]["id"])  # an integer, safe to inline in SQL


def sign_ins(stack: Stack, user: dict[str, Any]) -> list[str]:
    """The methods of the account's sign-ins, oldest first, from the audit trail
    (psql in the db container, not through the app under test)."""
    query = (
        "SELECT details->>'method' FROM audit_events WHERE type = 'login.succeeded' "
        "AND target_id = %d ORDER BY id"
    )
    return stack.psql(query % user_id(user)).split()


def password_flow(stack: Stack, chromium: Browser) -> None:
    from playwright.sync_api import expect

    user = new_user(stack, "account-password")
    started = time.monotonic()
    page, watch = chromium.new_page()

    # The watch sees a CSP violation: a style attribute, which the page's policy
    # refuses (no 'unsafe-inline'), set on a page of the app.
    open_account_page(stack, page, watch, "signed-out")
    page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")
    deadline = time.monotonic() + 5
    while not watch.violations and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert [v["directive"] for v in watch.violations] == ["style-src-attr"], watch.violations
    watch.violations.clear()
    # Chromium's line about the same refusal (the signed-out 401 stays expected).
    watch.console_errors[:] = [
        error for error in watch.console_errors if "Content Security Policy" not in error["text"]
    ]
    watch.check("the watch's own test")

    open_account_page(stack, page, watch, "signed-out")
    expect(page.locator("#passkey-login")).to_be_visible()
    shot(page, "signed-out")
    sign_in_with_password(page, user)
    expect_signed_in(page, user)
    expect(page.locator("#me-name")).to_have_text("account-password")
    sessions = page.locator("#session-list li[data-testid=session]")
    expect(sessions).to_have_count(1)
    expect(sessions.first).to_have_attribute("data-current", "true")
    expect(sessions.first).to_contain_text("(this browser)")
    expect(page.locator("#totp-status")).to_have_text(
        "Off: signing in asks for the password alone."
    )
    expect(page.locator("#links-none")).to_be_visible()
    shot(page, "password-signed-in")

    # The cookie session outlives the page: opened again, still signed in.
    open_account_page(stack, page, watch, "signed-in")
    expect(page.locator("#me-email")).to_have_text(user["email"])
    sign_out(page)
    watch.check("password sign-in")
    page.context.close()
    timed("Chromium: /account, password sign-in, sessions, sign out", started)
    assert sign_ins(stack, user) == ["password"]


def second_factor_flow(stack: Stack, chromium: Browser) -> None:
    from playwright.sync_api import expect

    user = new_user(stack, "account-totp")
    started = time.monotonic()
    page, watch = chromium.new_page()
    open_account_page(stack, page, watch, "signed-out")
    sign_in_with_password(page, user)
    expect_signed_in(page, user)

    codes, recovery = set_up_totp(page, "totp-setup")
    shot(page, "totp-recovery-codes")
    page.click("#recovery-codes-done")
    expect(page.locator("#recovery-codes")).to_be_hidden()
    expect(page.locator("#totp-status")).to_contain_text("Recovery codes left: 10.")
    sign_out(page)

    # The password alone is not enough now: the page asks for the second step.
    sign_in_with_password(page, user)
    expect(page.locator("#second-factor-form")).to_be_visible()
    expect(page.locator("#login-form")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
    shot(page, "second-step")
    used = codes.fresh()  # a new step's code: each works once
    page.fill("#second-factor-code", used)
    page.click("#second-factor-submit")
    expect_signed_in(page, user)
    shot(page, "totp-signed-in")
    sign_out(page)

    # The same code again is refused, and the page says so; a recovery code instead
    # of the authenticator app then signs in (the same challenge).
    sign_in_with_password(page, user)
    expect(page.locator("#second-factor-form")).to_be_visible()
    watch.expect_refused("/api/auth/cookie/second-factor")
    page.fill("#second-factor-code", used)
    page.click("#second-factor-submit")
    expect(page.locator("#login-error")).to_have_text(
        "Incorrect code, or the challenge is no longer valid (then log in again)"
    )
    expect(page.locator("#second-factor-form")).to_be_visible()
    shot(page, "second-step-refused")
    page.fill("#second-factor-code", recovery[0])
    page.click("#second-factor-submit")
    expect_signed_in(page, user)
    expect(page.locator("#totp-status")).to_contain_text("Recovery codes left: 9.")
    shot(page, "recovery-code-signed-in")

    # The recovery code just spent does not turn it off; a current code does, and
    # the password alone signs in again.
    watch.expect_refused("/api/auth/totp/disable")
    page.fill("#totp-disable-code", recovery[0])
    page.click("#totp-disable-submit")
    expect(page.locator("#totp-error")).to_have_text(
        "The code is not valid: give a current code of your authenticator app, "
        "or an unused recovery code"
    )
    expect(page.locator("#totp-status")).to_contain_text("On: signing in asks for a code.")
    page.fill("#totp-disable-code", codes.fresh())
    page.click("#totp-disable-submit")
    expect(page.locator("#notice")).to_have_text("The second factor is off.")
    expect(page.locator("#totp-status")).to_have_text(
        "Off: signing in asks for the password alone."
    )
    expect(page.locator("#totp-setup-start")).to_be_visible()
    shot(page, "totp-off")
    sign_out(page)
    sign_in_with_password(page, user)
    expect_signed_in(page, user)
    watch.check("second factor")
    page.context.close()
    timed("Chromium: TOTP set up, sign-ins with a code and a recovery code, off", started)
    assert sign_ins(stack, user) == ["password", "totp", "recovery_code", "password"]


def passkey_flow(stack: Stack, chromium: Browser) -> None:
    from playwright.sync_api import expect

    user = new_user(stack, "account-passkey")
    started = time.monotonic()
    page, watch = chromium.new_page()
    # Chromium's virtual authenticator for this page: a platform authenticator
    # (CTAP2, internal) that keeps discoverable credentials and verifies the user.
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable", {"enableUI": False})
    authenticator = devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]

    open_account_page(stack, page, watch, "signed-out")
    sign_in_with_password(page, user)
    expect_signed_in(page, user)
    # The second factor on, so the passkey sign-in below shows it is not asked.
    set_up_totp(page)
    page.click("#recovery-codes-done")
    expect(page.locator("#passkey-list li")).to_have_count(0)

    page.fill("#passkey-add-name", "Chromium's virtual key")
    page.click("#passkey-add-submit")
    expect(page.locator("#notice")).to_have_text("Passkey added.")
    passkeys = page.locator("#passkey-list li[data-testid=passkey]")
    expect(passkeys).to_have_count(1)
    expect(passkeys.first.locator("[data-testid=passkey-name]")).to_have_value(
        "Chromium's virtual key"
    )
    expect(page.locator("#passkeys-error")).to_have_text("")
    shot(page, "passkey-added")
    # The authenticator holds one discoverable credential, for the domain.
    [credential] = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})[
        "credentials"
    ]
    assert credential["isResidentCredential"] is True
    assert credential["rpId"] == DOMAIN

    name = passkeys.first.locator("[data-testid=passkey-name]")
    name.fill("Work laptop")
    passkeys.first.locator("[data-testid=passkey-rename]").click()
    expect(page.locator("#notice")).to_have_text("Passkey renamed.")
    expect(passkeys.first.locator("[data-testid=passkey-name]")).to_have_value("Work laptop")
    shot(page, "passkey-renamed")
    sign_out(page)

    # Nothing typed, and no second step although the second factor is on.
    expect(page.locator("#login-email")).to_have_value("")
    page.click("#passkey-login")
    expect_signed_in(page, user)
    expect(page.locator("#second-factor-form")).to_be_hidden()
    expect(page.locator("#totp-status")).to_contain_text("On: signing in asks for a code.")
    expect(passkeys).to_have_count(1)
    expect(passkeys.first.locator(".meta")).not_to_contain_text("last used never")
    shot(page, "passkey-signed-in")

    # Removed (a password user may remove the last one: the password remains).
    passkeys.first.locator("[data-testid=passkey-remove]").click()
    expect(page.locator("#notice")).to_have_text("Passkey removed.")
    expect(passkeys).to_have_count(0)
    shot(page, "passkey-removed")
    watch.check("passkeys")
    page.context.close()
    timed("Chromium: passkey added, renamed, signed in with (TOTP on), removed", started)

    assert sign_ins(stack, user) == ["password", "passkey"]
    events = (
        "SELECT type FROM audit_events WHERE target_id = %d AND type LIKE 'passkey.%%' ORDER BY id"
    )
    assert stack.psql(events % user_id(user)).split() == [
        "passkey.registered",
        "passkey.renamed",
        "passkey.removed",
    ]
    remaining = "SELECT count(*) FROM passkeys WHERE user_id = %d"
    assert stack.psql(remaining % user_id(user)).strip() == "0"


def sessions_flow(stack: Stack, chromium: Browser) -> None:
    from playwright.sync_api import expect

    user = new_user(stack, "account-sessions")
    started = time.monotonic()
    first, first_watch = chromium.new_page()
    open_account_page(stack, first, first_watch, "signed-out")
    sign_in_with_password(first, user)
    expect_signed_in(first, user)

    # Another browser (its own cookies) signs in too.
    other, other_watch = chromium.new_page()
    open_account_page(stack, other, other_watch, "signed-out")
    sign_in_with_password(other, user)
    expect_signed_in(other, user)
    assert other.evaluate(FETCH_ME) == 200

    # The first sees both (opened again: the list is read when the page loads).
    open_account_page(stack, first, first_watch, "signed-in")
    sessions = first.locator("#session-list li[data-testid=session]")
    expect(sessions).to_have_count(2)
    expect(first.locator("#session-list li[data-current=true]")).to_have_count(1)
    shot(first, "sessions-two")
    other_session = first.locator("#session-list li[data-current=false]")
    other_session.locator("[data-testid=session-end]").click()
    expect(first.locator("#notice")).to_have_text("The session is ended.")
    expect(sessions).to_have_count(1)
    expect(sessions.first).to_have_attribute("data-current", "true")
    shot(first, "sessions-ended")

    # The other's next call is refused, and so is its refresh: signed out.
    other_watch.expect_refused("/api/users/me")
    assert other.evaluate(FETCH_ME) == 401
    other_watch.expect_refused("/api/auth/cookie/refresh")
    assert other.evaluate(REFRESH) == 401
    other_watch.expect_refused("/api/users/me")
    other_watch.expect_refused("/api/auth/cookie/refresh")
    other.reload()
    expect(other.locator("body")).to_have_attribute("data-state", "signed-out")
    shot(other, "sessions-other-signed-out")
    # The first is untouched.
    assert first.evaluate(FETCH_ME) == 200
    first_watch.check("sessions (the first browser)")
    other_watch.check("sessions (the other browser)")
    first.context.close()
    other.context.close()
    timed("Chromium: two sessions, one ended from the other", started)


# Each test starts its own Chromium (see `chromium`), in a fresh $HOME.


def test_password_sign_in(configured_stack: Stack, tmp_path: Path) -> None:
    with chromium(configured_stack, tmp_path) as browser:
        password_flow(configured_stack, browser)


def test_second_factor(configured_stack: Stack, tmp_path: Path) -> None:
    with chromium(configured_stack, tmp_path) as browser:
        second_factor_flow(configured_stack, browser)


def test_passkeys(configured_stack: Stack, tmp_path: Path) -> None:
    with chromium(configured_stack, tmp_path) as browser:
        passkey_flow(configured_stack, browser)


def test_sessions(configured_stack: Stack, tmp_path: Path) -> None:
    with chromium(configured_stack, tmp_path) as browser:
        sessions_flow(configured_stack, browser)
