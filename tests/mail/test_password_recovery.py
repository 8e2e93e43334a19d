"""Password recovery end to end: the mail arrives over real SMTP, its link opens
the page, the token sets the password once, and every session ends."""

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import PASSWORD, assert_session_ended, bearer, login, register
from tests.mail.helpers import execute, mail_app, outbox, rows
from tests.mail.smtp_server import SmtpServer, bodies, link_of

NEW_PASSWORD = "a brand new passphrase"


async def ask(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.post("/api/auth/password-recovery", json={"email": email})


async def reset(
    http: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await http.post(
        "/api/auth/reset-password", json={"token": token, "new_password": password}
    )


async def recovery_token(http: httpx.AsyncClient, smtp: SmtpServer, email: str, nth: int) -> str:
    """Ask for recovery; the token of the `nth` reset mail to `email`."""
    assert (await ask(http, email)).status_code == 202
    mails = await smtp.wait_for_mails(email, nth)
    resets = [mail for mail in mails if "Reset your password" in mail["Subject"]]
    assert len(resets) >= 1
    return link_of(resets[-1])[1]


async def test_the_mailed_link_resets_the_password_and_ends_every_session(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (app, http):
        pair = await register(http, full_name="Ada")
        other = await login(http)
        await smtp.wait_for_mail("ada@example.com")  # the verification mail
        answer = await ask(http, "ADA@example.com")
        assert answer.status_code == 202
        assert answer.headers["Cache-Control"] == "no-store"
        mail = (await smtp.wait_for_mails("ada@example.com", 2))[-1]
        assert mail["Subject"] == "Reset your password for FastAPI Stack"
        assert mail["From"] == "FastAPI Stack <noreply@stack.localhost>"
        link, token = link_of(mail)
        assert link.startswith("https://stack.localhost/reset-password#token=")
        text, html = bodies(mail)
        assert "30 minutes" in text
        assert "30 minutes" in html
        # The page the link opens: the token is never in what the server sees.
        page = await http.get("/reset-password")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert 'id="new-password"' in page.text
        assert "/api/auth/reset-password" in page.text
        assert (await reset(http, token)).status_code == 204
        await assert_session_ended(http, pair)
        await assert_session_ended(http, other)
        old = await http.post(
            "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
        )
        assert old.status_code == 401
        fresh = await login(http, password=NEW_PASSWORD)
        me = await http.get("/api/users/me", headers=bearer(fresh["access_token"]))
        # The link reached the address: it is verified now.
        assert me.json()["is_verified"] is True
        # Nothing replayable stays behind: the token's hash only, the bodies gone.
        [stored] = await rows(app, "SELECT * FROM one_time_tokens WHERE purpose = 'reset'")
        assert token not in str(stored)
        assert all(row["sent_at"] and row["text_body"] is None for row in await outbox(app))


async def test_a_token_works_once(settings: Settings, smtp: SmtpServer) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        token = await recovery_token(http, smtp, "ada@example.com", 2)
        assert (await reset(http, token)).status_code == 204
        again = await reset(http, token, "yet another passphrase")
        assert again.status_code == 400
        assert again.json() == {"detail": "This link was already used: request a new one"}
        await login(http, password=NEW_PASSWORD)


async def test_a_new_request_voids_the_previous_link(settings: Settings, smtp: SmtpServer) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        first = await recovery_token(http, smtp, "ada@example.com", 2)
        second = await recovery_token(http, smtp, "ada@example.com", 3)
        refused = await reset(http, first)
        assert refused.status_code == 400
        assert "replaced by a newer one" in refused.json()["detail"]
        assert (await reset(http, second)).status_code == 204


async def test_an_expired_link_is_refused(settings: Settings, smtp: SmtpServer) -> None:
    async with mail_app(settings, smtp) as (app, http):
        await register(http)
        token = await recovery_token(http, smtp, "ada@example.com", 2)
        await execute(app, "UPDATE one_time_tokens SET expires_at = now() - interval '1 second'")
        refused = await reset(http, token)
        assert refused.status_code == 400
        assert refused.json() == {"detail": "This link has expired: request a new one"}
        await login(http)


async def test_the_link_lasts_password_reset_ttl(settings: Settings, smtp: SmtpServer) -> None:
    async with mail_app(settings, smtp, PASSWORD_RESET_TTL=timedelta(hours=2)) as (app, http):
        await register(http)
        token = await recovery_token(http, smtp, "ada@example.com", 2)
        [row] = await rows(
            app,
            "SELECT expires_at - created_at AS lifetime FROM one_time_tokens "
            "WHERE purpose = 'reset'",
        )
        assert row["lifetime"].total_seconds() == 7200
        text, _ = bodies(smtp.mails_to("ada@example.com")[-1])
        assert "2 hours" in text
        assert (await reset(http, token)).status_code == 204


async def test_no_mail_goes_to_an_unknown_or_inactive_address(
    settings: Settings, smtp: SmtpServer, admin_tokens: dict[str, str]
) -> None:
    async with mail_app(settings, smtp) as (app, http):
        ada = await register(http)
        await smtp.wait_for_mail("ada@example.com")
        deactivated = await http.patch(
            f"/api/users/{ada['user']['id']}",
            json={"is_active": False},
            headers=bearer(admin_tokens["access_token"]),
        )
        assert deactivated.status_code == 200
        assert (await ask(http, "ada@example.com")).status_code == 202
        assert (await ask(http, "nobody@example.com")).status_code == 202
        await register(http, "bob@example.com")
        assert (await ask(http, "bob@example.com")).status_code == 202
        await smtp.wait_for_mails("bob@example.com", 2)  # queued after the two above
        for _ in range(100):
            pending = [row for row in await outbox(app) if row["next_attempt_at"] is not None]
            if not pending:
                break
            await asyncio.sleep(0.05)
        assert len(smtp.mails_to("ada@example.com")) == 1  # the verification, before
        assert smtp.mails_to("nobody@example.com") == []
        dropped = [row for row in await outbox(app) if row["sent_at"] is None]
        assert {row["recipient"] for row in dropped} == {"ada@example.com", "nobody@example.com"}
        assert {row["last_error"] for row in dropped} == {"no active account has this address"}


async def test_a_link_mailed_before_an_email_change_is_refused(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http)
        token = await recovery_token(http, smtp, "ada@example.com", 2)
        changed = await http.patch(
            "/api/users/me",
            json={"email": "ada@new.example", "current_password": PASSWORD},
            headers=bearer(pair["access_token"]),
        )
        assert changed.status_code == 200
        _, confirm = link_of(await smtp.wait_for_mail("ada@new.example"))
        assert (await http.post("/api/auth/verify-email", json={"token": confirm})).is_success
        refused = await reset(http, token)
        assert refused.status_code == 400
        assert "address the account no longer uses" in refused.json()["detail"]


async def test_a_password_change_voids_the_reset_links(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http)
        token = await recovery_token(http, smtp, "ada@example.com", 2)
        changed = await http.post(
            "/api/users/me/password",
            json={"current_password": PASSWORD, "new_password": "changed on purpose"},
            headers=bearer(pair["access_token"]),
        )
        assert changed.status_code == 204
        refused = await reset(http, token)
        assert refused.status_code == 400
        assert "replaced" in refused.json()["detail"]


async def test_requests_are_limited_per_address_and_per_client(
    settings: Settings, smtp: SmtpServer, app: FastAPI
) -> None:
    async with mail_app(settings, smtp, MAIL_REQUESTS_PER_EMAIL=2, MAIL_REQUESTS_PER_CLIENT=5) as (
        _,
        http,
    ):
        await register(http)
        for email in ("ada@example.com", "nobody@example.com"):
            assert [(await ask(http, email)).status_code for _ in range(2)] == [202, 202]
        known, unknown = await ask(http, "ada@example.com"), await ask(http, "nobody@example.com")
        assert known.status_code == unknown.status_code == 429
        assert known.json() == unknown.json()
        assert int(known.headers["Retry-After"]) > 3000
        # Four of five used from this client: one more address, then none.
        assert (await ask(http, "carol@example.com")).status_code == 202
        assert (await ask(http, "dave@example.com")).status_code == 429
