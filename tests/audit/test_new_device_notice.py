"""The new-sign-in notice: a sign-in from a device the account has not used
before mails the account's address, naming the client's address and browser,
and its `login.succeeded` event says `new_device`. A device is known when it
presents a valid device cookie, or when the account registered or signed in
from the same address with the same User-Agent within AUDIT_RETENTION. The
address's mail limit bounds the notices."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.transports import DEVICE_COOKIE
from app.config import Settings
from tests.audit.helpers import MY_EVENTS, events
from tests.conftest import (
    ATTACKER_ADDRESS,
    CLIENT_ADDRESS,
    PASSWORD,
    app_with,
    bearer,
    client_at,
    register,
)
from tests.mail.helpers import execute, mail_app, outbox
from tests.mail.smtp_server import SmtpServer, bodies

OWNER = "ada@example.com"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
ANOTHER_BROWSER = "curl/8.5.0"
FAR_AWAY = "192.0.2.99"
NOTICE = "New sign-in"


async def register_from(app: FastAPI, address: str = CLIENT_ADDRESS, agent: str = BROWSER) -> None:
    """Register the account from this address and browser (its cookies dropped)."""
    async with client_at(app, address) as http:
        http.headers["User-Agent"] = agent
        await register(http, OWNER)


async def sign_in(
    app: FastAPI, address: str, agent: str = BROWSER, device_cookie: str | None = None
) -> httpx.Response:
    """A password sign-in from a fresh client at `address` with this User-Agent,
    holding no cookie but the device cookie given."""
    headers = {"User-Agent": agent}
    if device_cookie is not None:
        headers["Cookie"] = f"{DEVICE_COOKIE}={device_cookie}"
    async with client_at(app, address) as http:
        answer = await http.post(
            "/api/token/", data={"username": OWNER, "password": PASSWORD}, headers=headers
        )
    assert answer.status_code == 200, answer.text
    return answer


async def notices(app: FastAPI) -> list[dict[str, Any]]:
    """The new-sign-in notices queued for the account's address."""
    return [
        row
        for row in await outbox(app)
        if row["recipient"] == OWNER and NOTICE in (row["subject"] or "")
    ]


async def new_device_flags(app: FastAPI, answer: httpx.Response) -> list[bool]:
    """`details.new_device` of each of the account's sign-ins, newest first, as
    its own list of events shows them (read with the session `answer` opened)."""
    async with client_at(app, CLIENT_ADDRESS) as http:
        signed_in = await events(
            http, answer.json()["access_token"], MY_EVENTS, type="login.succeeded"
        )
    return [event["details"]["new_device"] for event in signed_in]


async def test_signing_in_where_the_account_registered_mails_no_notice(app: FastAPI) -> None:
    async with client_at(app, CLIENT_ADDRESS) as http:
        http.headers["User-Agent"] = BROWSER
        await register(http, OWNER)
        # The registering client, its device cookie with it.
        again = await http.post("/api/token/", data={"username": OWNER, "password": PASSWORD})
        assert again.status_code == 200
    # Another client, no cookie: the same address and browser as the registration.
    cookieless = await sign_in(app, CLIENT_ADDRESS)
    assert await new_device_flags(app, cookieless) == [False, False]
    assert await notices(app) == []


async def test_a_sign_in_from_a_new_address_mails_one_notice_naming_it(app: FastAPI) -> None:
    await register_from(app)
    first = await sign_in(app, ATTACKER_ADDRESS)
    [notice] = await notices(app)
    assert NOTICE in notice["subject"]
    assert ATTACKER_ADDRESS in notice["text_body"]
    assert BROWSER in notice["text_body"]
    assert await new_device_flags(app, first) == [True]
    # The same address and browser again (no cookie): known now, no second notice.
    second = await sign_in(app, ATTACKER_ADDRESS)
    assert len(await notices(app)) == 1
    assert await new_device_flags(app, second) == [False, True]


async def test_another_browser_at_a_known_address_is_a_new_device(app: FastAPI) -> None:
    await register_from(app)
    answer = await sign_in(app, CLIENT_ADDRESS, ANOTHER_BROWSER)
    [notice] = await notices(app)
    assert ANOTHER_BROWSER in notice["text_body"]
    assert await new_device_flags(app, answer) == [True]


async def test_the_device_cookie_of_an_earlier_sign_in_is_known_from_any_address(
    app: FastAPI,
) -> None:
    await register_from(app)
    cookie = (await sign_in(app, CLIENT_ADDRESS)).cookies[DEVICE_COOKIE]
    elsewhere = await sign_in(app, FAR_AWAY, ANOTHER_BROWSER, device_cookie=cookie)
    assert await notices(app) == []
    assert await new_device_flags(app, elsewhere) == [False, False]


async def test_a_device_cookie_from_before_a_logout_everywhere_is_a_new_device(
    app: FastAPI,
) -> None:
    """Ending every session voids the device cookies: a stolen one vouches for nothing."""
    await register_from(app)
    signed_in = await sign_in(app, CLIENT_ADDRESS)
    async with client_at(app, CLIENT_ADDRESS) as http:
        ended = await http.post(
            "/api/auth/logout-all", headers=bearer(signed_in.json()["access_token"])
        )
    assert ended.status_code == 204, ended.text
    stale = signed_in.cookies[DEVICE_COOKIE]
    elsewhere = await sign_in(app, FAR_AWAY, ANOTHER_BROWSER, device_cookie=stale)
    assert len(await notices(app)) == 1
    assert (await new_device_flags(app, elsewhere))[0] is True


@pytest.mark.parametrize(
    ("unused_for", "new_device"),
    [(timedelta(hours=-1), False), (timedelta(0), True), (timedelta(days=30), True)],
    ids=["within-retention", "at-retention", "past-retention"],
)
async def test_a_device_unused_for_the_audit_retention_is_new_again(
    app: FastAPI, settings: Settings, unused_for: timedelta, new_device: bool
) -> None:
    """AUDIT_RETENTION bounds what counts as a device used before, whether or
    not the sweep has deleted the older events yet."""
    await register_from(app)
    await execute(
        app,
        "UPDATE audit_events SET occurred_at = occurred_at - :age",
        age=settings.AUDIT_RETENTION + unused_for,
    )
    answer = await sign_in(app, CLIENT_ADDRESS)
    assert len(await notices(app)) == int(new_device)
    assert (await new_device_flags(app, answer))[0] is new_device


async def test_the_addresss_mail_limit_bounds_the_notices(app: FastAPI, settings: Settings) -> None:
    """Every sign-in from a new browser is a new device; past the address's
    ceiling (the registration's mail counted) no notice is queued."""
    limit = 3
    async with app_with(settings, MAIL_PER_ADDRESS_MAX=limit) as limited:
        await register_from(limited)
        answers = [await sign_in(limited, CLIENT_ADDRESS, f"Browser/{n}") for n in range(6)]
        assert await new_device_flags(limited, answers[-1]) == [True] * 6
        mails = [row for row in await outbox(limited) if row["recipient"] == OWNER]
        assert len(mails) == limit
        assert len(await notices(limited)) == limit - 1  # and the verification mail


async def test_the_notice_is_delivered_by_smtp_with_the_browser_escaped_in_html(
    settings: Settings, smtp: SmtpServer
) -> None:
    """The User-Agent is whatever the client sent: in the HTML body it is text."""
    agent = "Evil <b>Browser</b>"
    async with mail_app(settings, smtp) as (application, _):
        await register_from(application)
        await sign_in(application, ATTACKER_ADDRESS, agent)
        mails = await smtp.wait_for_mails(OWNER, 2)  # the verification mail and the notice
    [notice] = [mail for mail in mails if NOTICE in mail["Subject"]]
    assert notice["Subject"] == "New sign-in to your FastAPI Stack account"
    text, html = bodies(notice)
    assert ATTACKER_ADDRESS in text
    assert agent in text
    assert ATTACKER_ADDRESS in html
    assert "Evil &lt;b&gt;Browser&lt;/b&gt;" in html
    assert "<b>Browser" not in html
