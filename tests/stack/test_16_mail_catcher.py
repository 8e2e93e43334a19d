"""Mail through the real stack: MailDev catches it, Chromium follows the link.

The stack as a developer runs it for mail (COMPOSE_PROFILES=mail-catcher, the app's
SMTP_HOST pointed at the `mailcatcher` service; ENVIRONMENT=staging, since the
stack refuses the catcher in production): a password-recovery request through
Traefik queues a mail, the app's sender delivers it over SMTP to MailDev, the
test reads it through MailDev's REST API at https://mail.<DOMAIN> (routed by
Traefik, with an ACME certificate), and Chromium opens the link in it, sets a
new password on the app's page, after which the new password logs in and the old
one does not. In production the catcher never runs: the deploy refuses it.
"""

import os
import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.images import pinned_images
from tests.stack.conftest import (
    ARTIFACTS,
    DOMAIN,
    Stack,
    env_file_text,
    fetch_pebble_root,
    register_user,
    run,
    timed,
)
from tests.stack.test_05_browser import CHROMIUM, CHROMIUM_ARGS, browser_home

MAIL_SETTINGS = {
    "ENVIRONMENT": "staging",
    "COMPOSE_PROFILES": "mail-catcher",
    "SMTP_HOST": "mailcatcher",
    "SMTP_PORT": "1025",
    "SMTP_SECURITY": "none",
    "EMAILS_FROM": "FastAPI Stack <no-reply@fastapi-stack.test>",
}
MAIL_HOST = f"mail.{DOMAIN}"
NEW_PASSWORD = "a brand new passphrase for e2e"
LINK = re.compile(r"https://[^\s\"'<>]+/reset-password#token=[\w\-]+")


def fresh_acme_account(stack: Stack) -> None:
    """mail.<DOMAIN> needs a certificate of its own. An earlier module's `down` and
    redeploy restarted pebble, which keeps its accounts in memory: Traefik's stored
    account is gone there ("accountDoesNotExist") and the new pebble has a new root.
    Start Traefik's ACME state afresh (as after `docker volume rm …_letsencrypt`)
    and trust pebble's current root."""
    stack.compose("stop", "traefik")
    volume = f"{stack.env['COMPOSE_PROJECT_NAME']}_letsencrypt"
    python = pinned_images()["PYTHON_IMAGE"]
    run(["docker", "run", "--rm", "-v", f"{volume}:/le", python, "rm", "-f", "/le/acme.json"])
    stack.compose("start", "traefik")
    stack.root_ca = fetch_pebble_root(stack)

    def served() -> bool:
        with stack.client() as client:
            return client.get("/api/health/ready").status_code == 200

    stack.wait_until("the domain's certificate from pebble's current root", served, timeout=90)


@pytest.fixture(scope="module")
def mail_stack(configured_stack: Stack) -> Iterator[Stack]:
    stack = configured_stack
    started = time.monotonic()
    stack.env_file.write_text(env_file_text({**stack.settings, **MAIL_SETTINGS}))
    stack.deploy()
    fresh_acme_account(stack)
    timed("redeployed with the mail catcher (COMPOSE_PROFILES=mail-catcher)", started)
    try:
        yield stack
    finally:
        # Back to the session's settings (production): the catcher goes away.
        started = time.monotonic()
        stack.env_file.write_text(env_file_text(stack.settings))
        stack.deploy()
        stack.compose("rm", "--force", "--stop", "mailcatcher", check=False)
        timed("redeployed without the mail catcher", started)


def test_production_runs_no_catcher_and_refuses_one(configured_stack: Stack) -> None:
    """Before this module's mail mode: the production stack has no catcher, and a
    production deploy asking for one stops before changing anything."""
    stack = configured_stack
    assert stack.container_ids("mailcatcher") == []
    asking = stack.workdir / "production-with-catcher.env"
    # ENV_FILE is in the settings too (the deploy sources the file): point it here.
    asking.write_text(
        env_file_text(
            {**stack.settings, "COMPOSE_PROFILES": "mail-catcher", "ENV_FILE": str(asking)}
        )
    )
    running = stack.container_ids("app")
    result = run(["scripts/deploy.sh"], env={**stack.env, "ENV_FILE": str(asking)}, check=False)
    assert result.returncode != 0
    assert "the mail catcher (COMPOSE_PROFILES=mail-catcher) is for development" in result.stderr
    assert stack.container_ids("app") == running
    assert stack.container_ids("mailcatcher") == []


def mails_to(stack: Stack, address: str) -> list[dict[str, Any]]:
    with stack.client() as client:
        response = client.get(f"https://{MAIL_HOST}/email")
    assert response.status_code == 200, response.text
    mails: list[dict[str, Any]] = response.json()
    return [m for m in mails if any(to["address"] == address for to in m["to"])]


def test_a_recovery_mail_reaches_the_catcher_and_chromium_resets_the_password(
    mail_stack: Stack, tmp_path: Path
) -> None:
    stack = mail_stack
    account = register_user(stack, "mail")
    started = time.monotonic()
    with stack.client() as client:
        response = client.post("/api/auth/password-recovery", json={"email": account["email"]})
    assert response.status_code == 202, response.text

    def recovery_mail() -> dict[str, Any] | None:
        found = [m for m in mails_to(stack, account["email"]) if "password" in m["subject"].lower()]
        return found[0] if found else None

    mail: dict[str, Any] = stack.wait_until(
        "the recovery mail in MailDev", recovery_mail, timeout=60
    )
    timed("recovery requested -> mail in MailDev (SMTP from the app's sender)", started)
    links = set(LINK.findall(mail.get("text") or "")) | set(LINK.findall(unescape(mail["html"])))
    assert len(links) == 1, links
    (link,) = links
    assert link.startswith(f"https://{DOMAIN}/reset-password#token=")

    from playwright.sync_api import expect, sync_playwright

    home = browser_home(stack, tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(home)},
        )
        try:
            page = browser.new_page()
            opened = page.goto(link)
            assert opened is not None
            assert opened.status == 200
            page.fill("#new-password", NEW_PASSWORD)
            page.fill("#confirm-password", NEW_PASSWORD)
            page.click("#submit")
            try:
                expect(page.locator("#status.done")).to_be_visible(timeout=15_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "reset-password.png"))
        finally:
            browser.close()

    with stack.client() as client:
        old = client.post(
            "/api/token/", json={"email": account["email"], "password": account["password"]}
        )
        new = client.post("/api/token/", json={"email": account["email"], "password": NEW_PASSWORD})
        # The reset ended every session: the registration's token is dead.
        me = client.get(
            "/api/users/me", headers={"Authorization": f"Bearer {account['access_token']}"}
        )
    assert old.status_code == 401, old.text
    assert new.status_code == 200, new.text
    assert me.status_code == 401, me.text


def past_rate_limit(stack: Stack, what: str, send: Any) -> httpx.Response:
    """`send()`'s answer once Traefik's limiter on the credential endpoints lets it
    through (an earlier test's burst may still be spending it), as register_user does."""

    def attempt() -> httpx.Response | None:
        with stack.client() as client:
            response: httpx.Response = send(client)
        return None if response.status_code == 429 else response

    answer: httpx.Response = stack.wait_until(what, attempt, timeout=90, interval=3)
    return answer


def test_security_notices_reach_the_mail_catcher(mail_stack: Stack) -> None:
    """A password change, a reset and an email change each mail the account's
    address a notice (the email change's with its "this wasn't me" link), and
    the new address its confirmation link: all through the app's sender to MailDev."""
    stack = mail_stack
    account = register_user(stack, "notices")
    address, new_address = account["email"], f"moved-{account['email']}"
    changed_password = "a changed passphrase for e2e"

    def mail_with(to: str, subject: str) -> dict[str, Any] | None:
        found = [m for m in mails_to(stack, to) if subject in m["subject"]]
        return found[-1] if found else None

    with stack.client() as client:
        changed = client.post(
            "/api/users/me/password",
            json={"current_password": account["password"], "new_password": changed_password},
            headers={"Authorization": f"Bearer {account['access_token']}"},
        )
    assert changed.status_code == 204, changed.text
    stack.wait_until(
        "the password-changed notice in MailDev", lambda: mail_with(address, "was changed"), 60
    )

    asked = past_rate_limit(
        stack,
        "password recovery past Traefik's rate limit",
        lambda client: client.post("/api/auth/password-recovery", json={"email": address}),
    )
    assert asked.status_code == 202, asked.text
    recovery = stack.wait_until(
        "the recovery mail in MailDev", lambda: mail_with(address, "Reset your password"), 60
    )
    (token,) = {found.rsplit("=", 1)[1] for found in LINK.findall(recovery["text"] or "")}
    reset = past_rate_limit(
        stack,
        "the reset past Traefik's rate limit",
        lambda client: client.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        ),
    )
    assert reset.status_code == 204, reset.text
    stack.wait_until(
        "the password-reset notice in MailDev", lambda: mail_with(address, "was reset"), 60
    )

    login = past_rate_limit(
        stack,
        "a login past Traefik's rate limit",
        lambda client: client.post(
            "/api/token/", json={"email": address, "password": NEW_PASSWORD}
        ),
    )
    assert login.status_code == 200, login.text
    with stack.client() as client:
        moved = client.patch(
            "/api/users/me",
            json={"email": new_address, "current_password": NEW_PASSWORD},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
    assert moved.status_code == 200, moved.text
    assert moved.json()["email"] == address  # until the new address's link is followed
    notice = stack.wait_until(
        "the email-change notice to the old address in MailDev",
        lambda: mail_with(address, "is being changed"),
        timeout=60,
    )
    assert f"https://{DOMAIN}/secure-account#token=" in (notice["text"] or "")
    confirm = stack.wait_until(
        "the confirmation link to the new address in MailDev",
        lambda: mail_with(new_address, "Confirm your new email address"),
        timeout=60,
    )
    assert f"https://{DOMAIN}/verify-email#token=" in (confirm["text"] or "")
