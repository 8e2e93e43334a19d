"""Sign in with OpenID Connect through the real stack, in Chromium.

A real OpenID provider (tests/oidc/provider.mjs: panva's oidc-provider, the one
`make test` signs in against) runs in the stack (compose.test.yaml, profile
`oidc-provider`), public at https://id.<DOMAIN> through Traefik with a certificate
from the suite's ACME CA. The app is configured as a user with a company issuer
behind a private CA would configure it: OIDC_PROVIDERS names the https issuer,
OIDC_CLIENT_SECRETS its secret, OIDC_CA_FILE the CA (pebble's root, mounted), and
the app reaches the issuer at the same URL as the browser (Traefik's network alias).

Numbered to run before test_17_swarm: after that module's swarm has left the
engine, a new container on the compose stack's internal network did not reach
the database here (the migration of the next deploy timed out).

Chromium, trusting the ACME root as `make trust-ca` makes it, opens the app's
`start`, is sent to the provider, fills its real login and consent pages, comes
back through the callback, and is signed in with a cookie session. Nothing of the
flow is mocked: discovery, the token endpoint and the JWKS are the provider's.
"""

import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.stack.conftest import (
    ARTIFACTS,
    DOMAIN,
    NOTES,
    Stack,
    env_file_text,
    fetch_pebble_root,
    timed,
)
from tests.stack.test_05_browser import CHROMIUM, CHROMIUM_ARGS, browser_home
from tests.stack.test_16_mail_catcher import fresh_acme_account

PROVIDER = "idp"
ISSUER_HOST = f"id.{DOMAIN}"
ISSUER = f"https://{ISSUER_HOST}"
CLIENT_ID = "fastapi-stack-e2e"
START_PATH = f"/api/auth/oidc/{PROVIDER}/start"
CALLBACK_PATH = f"/api/auth/oidc/{PROVIDER}/callback"
# Where compose.test.yaml mounts the suite's ACME root in the app.
CA_IN_APP = "/etc/fastapi-stack-test/acme-root.pem"
FLOW_COOKIE = "__Secure-oidc-flow"
ACCESS_COOKIE = "__Host-access"
CSRF_COOKIE = "__Host-csrf"
FLOW_TTL_SECONDS = 600  # OIDC_FLOW_TTL's default
# The provider too resolves to this machine's Traefik.
BROWSER_ARGS = [
    *(arg for arg in CHROMIUM_ARGS if not arg.startswith("--host-resolver-rules=")),
    f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1, MAP {ISSUER_HOST} 127.0.0.1",
]
# The provider's development pages (oidc-provider's own layout) link a web font;
# this closed network answers nothing there, and the browser is not let try.
PROVIDER_PAGE_FONTS = "https://fonts.googleapis.com/"
FETCH_ME = """async () => {
    const response = await fetch('/api/users/me');
    return {status: response.status, body: await response.json()};
}"""


@pytest.fixture(scope="module")
def oidc_stack(configured_stack: Stack) -> Iterator[Stack]:
    stack = configured_stack
    secret = secrets.token_urlsafe(32)
    settings = {
        **stack.settings,
        "COMPOSE_PROFILES": "oidc-provider",
        "OIDC_PROVIDERS": json.dumps({PROVIDER: {"issuer": ISSUER, "client_id": CLIENT_ID}}),
        "OIDC_CLIENT_SECRETS": json.dumps({PROVIDER: secret}),
        "OIDC_CA_FILE": CA_IN_APP,
    }
    started = time.monotonic()
    # This run's pebble root, into the file the app mounts (it reads it when it starts).
    stack.root_ca = fetch_pebble_root(stack)
    # The provider's one client: the app, by its callback on DOMAIN.
    stack.env["OIDC_TEST_CLIENT"] = json.dumps(
        {
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "redirect_uris": [f"https://{DOMAIN}{CALLBACK_PATH}"],
        }
    )
    stack.env_file.write_text(env_file_text(settings))
    try:
        stack.deploy()
        # id.<DOMAIN> needs a certificate of its own, from the pebble running now.
        fresh_acme_account(stack)

        def discovery() -> dict[str, Any] | None:
            url = f"{ISSUER}/.well-known/openid-configuration"
            response = httpx.get(url, verify=stack.ssl_context(), timeout=5)
            return response.json() if response.status_code == 200 else None

        document = stack.wait_until(
            "the provider's discovery document at https://id.<DOMAIN>", discovery, timeout=90
        )
        assert document["issuer"] == ISSUER
        assert document["token_endpoint"].startswith(f"{ISSUER}/")
        timed("redeployed with the OpenID provider (COMPOSE_PROFILES=oidc-provider)", started)
        yield stack
    finally:
        started = time.monotonic()
        # While the profile is still active (compose knows the service), even if
        # the deploy above failed.
        stack.compose("rm", "--force", "--stop", "oidc-provider", check=False)
        stack.env.pop("OIDC_TEST_CLIENT", None)
        stack.env_file.write_text(env_file_text(stack.settings))
        stack.deploy()
        timed("redeployed without the OpenID provider", started)


def at(url: str) -> tuple[str | None, str]:
    parts = urlsplit(url)
    return parts.hostname, parts.path


def sign_in_at_the_provider(page: Any, login: str, screenshot: Path | None = None) -> None:
    """On the provider's login page: its real form, then its consent page (asked
    again in a new provider session), until the browser is back on the app."""
    from playwright.sync_api import expect

    assert at(page.url)[0] == ISSUER_HOST, page.url
    expect(page.locator("input[name=login]")).to_be_visible(timeout=15_000)
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.get_by_role("button", name="Sign-in").click()
    consent = page.get_by_role("button", name="Continue")
    deadline = time.monotonic() + 20
    while at(page.url)[0] != DOMAIN:
        if at(page.url)[0] == ISSUER_HOST and consent.is_visible():
            consent.click()
        assert time.monotonic() < deadline, f"never sent back to the app (at {page.url})"
        page.wait_for_timeout(100)


def cookies_by_name(context: Any, url: str) -> dict[str, dict[str, Any]]:
    return {cookie["name"]: cookie for cookie in context.cookies(url)}


def test_chromium_signs_in_with_the_provider_through_traefik(
    oidc_stack: Stack, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    stack = oidc_stack
    email = f"oidc-{uuid.uuid4().hex[:12]}@example.com"
    login = f"sub-{uuid.uuid4().hex}|{email}|true"  # tests/oidc/provider.mjs: any login
    home = browser_home(stack, tmp_path)
    shots = {
        "login": ARTIFACTS / "oidc-provider-login.png",
        "back": ARTIFACTS / "oidc-signed-in-docs.png",
        "me": ARTIFACTS / "oidc-users-me.png",
    }
    started = time.monotonic()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=BROWSER_ARGS,
            env={**os.environ, "HOME": str(home)},
            viewport={"width": 1280, "height": 900},
        )
        try:
            context.route(f"{PROVIDER_PAGE_FONTS}**", lambda route: route.abort())
            page = context.new_page()
            # Each request, with the page it was made for.
            requested: list[tuple[str, str]] = []
            callbacks: list[tuple[str, int, str | None]] = []
            page.on("request", lambda request: requested.append((request.url, request.frame.url)))

            def callback_answered(response: Any) -> None:
                if at(response.url) == (DOMAIN, CALLBACK_PATH):
                    location = response.headers.get("location")
                    callbacks.append((response.url, response.status, location))

            page.on("response", callback_answered)

            # The app sends the browser to the provider, the flow cookie set.
            page.goto(stack.url(f"{START_PATH}?redirect_to=/docs"))
            assert at(page.url)[0] == ISSUER_HOST, page.url
            flow = cookies_by_name(context, stack.url(CALLBACK_PATH))[FLOW_COOKIE]
            assert flow["domain"] == DOMAIN  # host-only: no Domain attribute
            assert flow["path"] == CALLBACK_PATH
            assert flow["httpOnly"] is True
            assert flow["secure"] is True
            assert flow["sameSite"] == "Lax"
            assert 0 < flow["expires"] - time.time() <= FLOW_TTL_SECONDS
            # Sent to the callback only: no other path of the site sees it.
            assert FLOW_COOKIE not in cookies_by_name(context, stack.url("/api/users/me"))

            sign_in_at_the_provider(page, login, shots["login"])

            # Back through the callback (a code and the state), on to redirect_to.
            page.wait_for_url(stack.url("/docs"), timeout=15_000)
            [(callback_url, status, location)] = callbacks
            query = parse_qs(urlsplit(callback_url).query)
            assert set(query) >= {"code", "state"}, callback_url
            assert (status, location) == (303, "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                "FastAPI Stack", timeout=20_000
            )
            page.screenshot(path=str(shots["back"]))

            # A cookie session: the flow cookie spent, the session's set as the
            # browser keeps them.
            cookies = cookies_by_name(context, stack.url("/api/users/me"))
            assert FLOW_COOKIE not in cookies_by_name(context, stack.url(CALLBACK_PATH))
            assert cookies[ACCESS_COOKIE]["httpOnly"] is True
            assert cookies[ACCESS_COOKIE]["secure"] is True
            assert cookies[CSRF_COOKIE]["httpOnly"] is False
            readable = page.evaluate("document.cookie")
            assert CSRF_COOKIE in readable
            assert ACCESS_COOKIE not in readable

            me = page.evaluate(FETCH_ME)
            assert me["status"] == 200, me
            assert me["body"]["email"] == email
            assert me["body"]["is_verified"] is True
            first_id = me["body"]["id"]
            page.goto(stack.url("/api/users/me"))
            expect(page.locator("body")).to_contain_text(email)
            page.screenshot(path=str(shots["me"]))

            # Again, in a fresh browser session (no cookie of the app's or the
            # provider's): the same subject reaches the same account.
            context.clear_cookies()
            page.goto(stack.url(f"{START_PATH}?redirect_to=/docs"))
            sign_in_at_the_provider(page, login)
            page.wait_for_url(stack.url("/docs"), timeout=15_000)
            again = page.evaluate(FETCH_ME)
            assert again["status"] == 200, again
            assert again["body"]["id"] == first_id
        finally:
            context.close()
    timed("Chromium: start, provider login and consent, callback, signed in; twice", started)
    NOTES.append(f"screenshots: {', '.join(str(path) for path in shots.values())}")

    # Everything came from the stack, the app and the provider; only the provider's
    # development pages asked for more (their font, refused above).
    elsewhere = [
        (url, page_url)
        for url, page_url in requested
        if at(url)[0] not in (DOMAIN, ISSUER_HOST)
        and not (url.startswith(PROVIDER_PAGE_FONTS) and at(page_url)[0] == ISSUER_HOST)
    ]
    assert elsewhere == [], f"the pages loaded resources from elsewhere: {elsewhere}"
    assert all(path.stat().st_size > 5_000 for path in shots.values())
    # One account, one link to the provider's subject, two sign-ins by it (read with
    # psql in the db container, not through the app under test).
    user_id = int(first_id)  # an integer, safe to inline
    links = (
        "SELECT u.email, i.provider, i.subject FROM users u JOIN oidc_identities i "
        "ON i.user_id = u.id WHERE u.id = %d"
    )
    assert stack.psql(links % user_id).split() == [f"{email}|{PROVIDER}|{login}"]
    sign_ins = (
        "SELECT count(*) FROM audit_events WHERE type = 'login.succeeded' "
        "AND target_id = %d AND details->>'method' = 'oidc'"
    )
    assert stack.psql(sign_ins % user_id).strip() == "2"
