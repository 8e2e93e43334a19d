"""Email verification end to end: registration and an email change mail a link,
the link's page and token verify the address, and with
LOGIN_REQUIRES_VERIFIED_EMAIL an unverified login is a 403 until then."""

import asyncio

import httpx

from app.config import Settings
from tests.conftest import PASSWORD, bearer, login, register
from tests.mail.helpers import mail_app, outbox, rows
from tests.mail.smtp_server import SmtpServer, bodies, link_of

UNVERIFIED = (
    "Email address not verified: follow the link mailed to you, or ask for a new one "
    "with POST /api/auth/verify-email/resend"
)


async def verify(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/api/auth/verify-email", json={"token": token})


async def resend(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.post("/api/auth/verify-email/resend", json={"email": email})


async def is_verified(http: httpx.AsyncClient, access_token: str) -> bool:
    me = await http.get("/api/users/me", headers=bearer(access_token))
    verified: bool = me.json()["is_verified"]
    return verified


async def test_registration_mails_a_link_that_verifies_the_address_once(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http, "Ada.Lovelace+o'brien@example.com")
        assert pair["user"]["is_verified"] is False
        mail = await smtp.wait_for_mail("ada.lovelace+o'brien@example.com")
        assert mail["Subject"] == "Confirm your email address for FastAPI Stack"
        link, token = link_of(mail)
        assert link.startswith("https://stack.localhost/verify-email#token=")
        text, html = bodies(mail)
        assert "ada.lovelace+o'brien@example.com" in text
        # Values are escaped in HTML: the address's quote cannot end an attribute.
        assert "ada.lovelace+o&#x27;brien@example.com" in html
        assert "o'brien" not in html
        assert "2 days" in text
        page = await http.get("/verify-email")
        assert page.status_code == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "/api/auth/verify-email" in page.text
        assert (await verify(http, token)).status_code == 204
        # Verifying ends the sessions opened before it (pre-account hijacking).
        assert (
            await http.get("/api/users/me", headers=bearer(pair["access_token"]))
        ).status_code == 401
        fresh = await login(http, "ada.lovelace+o'brien@example.com")
        assert await is_verified(http, fresh["access_token"])
        again = await verify(http, token)
        assert again.status_code == 400
        assert again.json() == {"detail": "This link was already used: request a new one"}


async def change_email(http: httpx.AsyncClient, access_token: str, email: str) -> httpx.Response:
    return await http.patch(
        "/api/users/me",
        json={"email": email, "current_password": PASSWORD},
        headers=bearer(access_token),
    )


async def test_an_email_change_mails_the_new_address_a_link_that_makes_it_the_accounts(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        _, first = link_of(await smtp.wait_for_mail("ada@example.com"))
        assert (await verify(http, first)).status_code == 204
        pair = await login(http)  # verifying ended the sessions opened before
        changed = await change_email(http, pair["access_token"], "ada@new.example")
        assert changed.status_code == 200
        # Nothing changes until the new address proves it is the user's.
        assert (changed.json()["email"], changed.json()["is_verified"]) == ("ada@example.com", True)
        mail = await smtp.wait_for_mail("ada@new.example")
        assert mail["Subject"] == "Confirm your new email address for FastAPI Stack"
        _, token = link_of(mail)
        assert (await verify(http, token)).status_code == 204
        pair = await login(http, "ada@new.example")
        assert await is_verified(http, pair["access_token"])
        # The same name again changes nothing, mails nothing, needs no password.
        same = await http.patch(
            "/api/users/me", json={"email": "ADA@new.example"}, headers=bearer(pair["access_token"])
        )
        assert (same.status_code, same.json()["is_verified"]) == (200, True)


async def test_a_link_for_a_previous_address_verifies_nothing(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http)
        _, old_token = link_of(await smtp.wait_for_mail("ada@example.com"))
        await change_email(http, pair["access_token"], "ada@new.example")
        _, confirm = link_of(await smtp.wait_for_mail("ada@new.example"))
        assert (await verify(http, confirm)).status_code == 204
        refused = await verify(http, old_token)
        assert refused.status_code == 400
        assert "address the account no longer uses" in refused.json()["detail"]


async def test_an_admin_changing_a_users_email_mails_the_new_address(
    settings: Settings, smtp: SmtpServer, admin_tokens: dict[str, str]
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        ada = await register(http)
        admin = bearer(admin_tokens["access_token"])
        url = f"/api/users/{ada['user']['id']}"
        changed = await http.patch(url, json={"email": "ada@work.example"}, headers=admin)
        assert changed.json()["is_verified"] is False
        await smtp.wait_for_mail("ada@work.example")
        # An admin may vouch for an address: no mail then.
        vouched = await http.patch(
            url, json={"email": "ada@home.example", "is_verified": True}, headers=admin
        )
        assert vouched.json()["is_verified"] is True
        assert (await http.get("/api/health")).status_code == 200
        assert smtp.mails_to("ada@home.example") == []


async def test_with_verification_required_an_unverified_login_is_a_403_until_verified(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp, LOGIN_REQUIRES_VERIFIED_EMAIL=True) as (_, http):
        await register(http)
        await smtp.wait_for_mail("ada@example.com")
        form = {"username": "ada@example.com", "password": PASSWORD}
        refused = await http.post("/api/token/", data=form)
        assert refused.status_code == 403
        assert refused.json() == {"detail": UNVERIFIED}
        # Only the password's holder learns it: a wrong password is the usual 401.
        wrong = await http.post("/api/token/", data={**form, "password": "not the password"})
        assert wrong.status_code == 401
        # Asking again voids the first link; the new one lets them in.
        assert (await resend(http, "ada@example.com")).status_code == 202
        mails = await smtp.wait_for_mails("ada@example.com", 2)
        _, first = link_of(mails[0])
        _, second = link_of(mails[1])
        assert (await verify(http, first)).status_code == 400
        assert (await verify(http, second)).status_code == 204
        tokens = await login(http)
        assert await is_verified(http, tokens["access_token"])


async def test_by_default_an_unverified_account_logs_in(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        tokens = await login(http)
        assert not await is_verified(http, tokens["access_token"])


async def test_resending_is_limited_and_mails_only_unverified_accounts(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp, MAIL_REQUESTS_PER_EMAIL=2) as (app, http):
        await register(http)
        _, token = link_of(await smtp.wait_for_mail("ada@example.com"))
        assert (await verify(http, token)).status_code == 204
        answers = [await resend(http, "ada@example.com") for _ in range(3)]
        unknown = [await resend(http, "nobody@example.com") for _ in range(3)]
        assert [a.status_code for a in answers] == [a.status_code for a in unknown]
        assert [a.status_code for a in answers] == [202, 202, 429]
        assert answers[0].json() == unknown[0].json()
        assert "Retry-After" in answers[2].headers
        await register(http, "bob@example.com")
        await smtp.wait_for_mail("bob@example.com")
        for _ in range(100):  # the sender marks a mail sent once SMTP took it
            sent = [row for row in await outbox(app) if row["sent_at"] is not None]
            if len(sent) == 2:
                break
            await asyncio.sleep(0.05)
        assert [row["recipient"] for row in sent] == ["ada@example.com", "bob@example.com"]
        assert await is_verified(http, (await login(http))["access_token"])
        assert len(await rows(app, "SELECT 1 FROM one_time_tokens WHERE purpose = 'verify'")) == 2
