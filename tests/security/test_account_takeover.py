"""Account takeover: what a stolen session (a cookie with its CSRF token, or a
bearer) can and cannot do to the account it was stolen from, and what an
attacker who registered a victim's address first keeps once it is verified.

A session alone cannot re-address the account (the current password is asked),
a new address takes effect only when the link mailed to it is followed, the old
address is told and can end every session and take its address back, and
password changes and resets are announced to the account's address; taking it
back ends every way in the thief may have added. Verifying an address (or a new
one) ends every session opened before it.
"""

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.auth.cookie_sessions import cookie_login
from tests.auth.second_factor import TOTP_PATH, TotpClock, enable, password_login
from tests.auth.test_api_keys import create_key
from tests.conftest import PASSWORD, assert_session_ended, bearer, login, me, register
from tests.mail.helpers import mail_app
from tests.mail.smtp_server import SmtpServer, bodies, link_of

OWNER = "ada@example.com"
THIEF = "thief@evil.example"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(autouse=True)
def _tables_emptied_after(app: FastAPI) -> None:
    """The tests run apps of their own; asking for the suite's `app` makes the
    suite empty the tables after each (tests/conftest.py)."""


async def change_email(
    http: httpx.AsyncClient, headers: dict[str, str], email: str, password: str | None = PASSWORD
) -> httpx.Response:
    body = {"email": email} | ({"current_password": password} if password else {})
    return await http.patch("/api/users/me", json=body, headers=headers)


async def test_a_stolen_cookie_session_cannot_change_the_email_without_the_password(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        stolen = await cookie_login(http)
        answer = await change_email(http, stolen.headers(), THIEF, password=None)
        assert answer.status_code == 400
        assert "current_password" in answer.json()["detail"]
        owner = await login(http)
        assert (await me(http, owner["access_token"])).json()["email"] == OWNER


async def test_a_wrong_current_password_changes_no_email(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http)
        answer = await change_email(http, bearer(pair["access_token"]), THIEF, "a wrong guess")
        assert answer.status_code == 400
        assert answer.json() == {"detail": "The current password is incorrect"}
        assert (await me(http, pair["access_token"])).json()["email"] == OWNER


async def test_a_new_address_takes_effect_only_when_its_link_is_followed(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http)
        answer = await change_email(http, bearer(pair["access_token"]), "ada@new.example")
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == OWNER
        assert (await me(http, pair["access_token"])).json()["email"] == OWNER
        mail = await smtp.wait_for_mail("ada@new.example")
        link, token = link_of(mail)
        assert link.startswith("https://stack.localhost/verify-email#token=")
        confirmed = await http.post("/api/auth/verify-email", json={"token": token})
        assert confirmed.status_code == 204
        fresh = await login(http, "ada@new.example")
        user = (await me(http, fresh["access_token"])).json()
        assert (user["email"], user["is_verified"]) == ("ada@new.example", True)


async def test_the_old_address_is_told_and_can_end_every_session_and_take_the_account_back(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        owner = await login(http)
        stolen = await cookie_login(http)
        # The thief knows the password too: the change goes through, and is told.
        assert (await change_email(http, stolen.headers(), THIEF)).status_code == 200
        _, confirm = link_of(await smtp.wait_for_mail(THIEF))
        confirmed = await http.post("/api/auth/verify-email", json={"token": confirm})
        assert confirmed.status_code == 204
        # The owner's address got the registration's mail, then the notice.
        notice = (await smtp.wait_for_mails(OWNER, 2))[-1]
        assert notice["Subject"] == "Your email address for FastAPI Stack is being changed"
        assert THIEF in bodies(notice)[0]
        link, token = link_of(notice)
        assert link.startswith("https://stack.localhost/secure-account#token=")
        secured = await http.post("/api/auth/secure-account", json={"token": token})
        assert secured.status_code == 204
        await assert_session_ended(http, owner)
        assert (await http.get("/api/users/me", headers=stolen.headers())).status_code == 401
        # The password the thief knew is void; recovery mails the owner's address.
        old_password = await http.post(
            "/api/token/", data={"username": OWNER, "password": PASSWORD}
        )
        assert old_password.status_code == 401
        asked = await http.post("/api/auth/password-recovery", json={"email": OWNER})
        assert asked.status_code == 202
        _, reset_token = link_of((await smtp.wait_for_mails(OWNER, 3))[-1])
        reset = await http.post(
            "/api/auth/reset-password", json={"token": reset_token, "new_password": NEW_PASSWORD}
        )
        assert reset.status_code == 204
        fresh = await login(http, OWNER, NEW_PASSWORD)
        assert (await me(http, fresh["access_token"])).json()["email"] == OWNER


async def test_a_password_change_is_announced_to_the_accounts_address(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        pair = await register(http)
        await smtp.wait_for_mail(OWNER)  # the verification mail
        changed = await http.post(
            "/api/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(pair["access_token"]),
        )
        assert changed.status_code == 204
        notice = (await smtp.wait_for_mails(OWNER, 2))[-1]
        assert notice["Subject"] == "Your password for FastAPI Stack was changed"


async def test_a_reset_is_announced_to_the_accounts_address(
    settings: Settings, smtp: SmtpServer
) -> None:
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        await smtp.wait_for_mail(OWNER)
        assert (
            await http.post("/api/auth/password-recovery", json={"email": OWNER})
        ).status_code == 202
        _, token = link_of((await smtp.wait_for_mails(OWNER, 2))[-1])
        reset = await http.post(
            "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert reset.status_code == 204
        notice = (await smtp.wait_for_mails(OWNER, 3))[-1]
        assert notice["Subject"] == "Your password for FastAPI Stack was reset"


async def test_verifying_an_address_ends_the_sessions_opened_before_it(
    settings: Settings, smtp: SmtpServer
) -> None:
    """Pre-account hijacking: the attacker registers the victim's address first
    and keeps a session; the victim follows the unsolicited link."""
    async with mail_app(settings, smtp) as (_, http):
        squatter = await register(http, "victim@example.com")
        _, token = link_of(await smtp.wait_for_mail("victim@example.com"))
        assert (await http.post("/api/auth/verify-email", json={"token": token})).status_code == 204
        await assert_session_ended(http, squatter)


async def test_taking_the_account_back_ends_the_ways_in_the_thief_added(
    settings: Settings, smtp: SmtpServer, totp_clock: TotpClock
) -> None:
    """A thief with the password turns a second factor on (only they can give
    its codes), makes an API key and changes the address. The owner's "this
    wasn't me" link takes all of it away: after a password reset the owner signs
    in with the password alone, and the thief's key is refused."""
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        stolen = await login(http)
        await enable(http, stolen["access_token"], totp_clock)
        key = await create_key(http, stolen["access_token"], ["profile.read"])
        assert (await me(http, key["key"])).status_code == 200
        assert (await change_email(http, bearer(stolen["access_token"]), THIEF)).status_code == 200
        _, token = link_of((await smtp.wait_for_mails(OWNER, 2))[-1])
        secured = await http.post("/api/auth/secure-account", json={"token": token})
        assert secured.status_code == 204, secured.text
        assert (await me(http, key["key"])).status_code == 401
        asked = await http.post("/api/auth/password-recovery", json={"email": OWNER})
        assert asked.status_code == 202
        _, reset_token = link_of((await smtp.wait_for_mails(OWNER, 3))[-1])
        reset = await http.post(
            "/api/auth/reset-password", json={"token": reset_token, "new_password": NEW_PASSWORD}
        )
        assert reset.status_code == 204
        signed_in = await password_login(http, OWNER, NEW_PASSWORD)
        assert signed_in.status_code == 200, signed_in.text  # no second step asked
        status = await http.get(TOTP_PATH, headers=bearer(signed_in.json()["access_token"]))
        assert status.json()["enabled"] is False
