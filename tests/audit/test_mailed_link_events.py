"""What following a mailed link writes to the audit trail: one event naming the
account (no actor: nobody is signed in), the client that followed the link
(its address and User-Agent) and what changed, never the link's token or a
password. A link that is refused writes nothing.

Each flow is driven over HTTP as a user would: the mail arrives over SMTP, and
its link is followed by another client than the one that asked for it."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.schema.audit import EventType
from tests.conftest import PASSWORD, bearer, client_at, login, register
from tests.mail.helpers import mail_app
from tests.mail.smtp_server import SmtpServer, link_of

OWNER = "ada@example.com"
NEW_ADDRESS = "ada@new.example"
NEW_PASSWORD = "a brand new passphrase"
# Who follows the links: not the client that registered (CLIENT_ADDRESS).
FOLLOWER_ADDRESS = "192.0.2.80"
FOLLOWER_AGENT = "MailLinkBrowser/1.0"

# The subjects of the mails whose links are followed.
VERIFY = "Confirm your email address"
CONFIRM_CHANGE = "Confirm your new email address"
UNDO = "is being changed"
RESET = "Reset your password"


@dataclass
class Links:
    """The account's client, the client that follows its mailed links, the mail
    they arrive by, and an auditor's headers."""

    http: httpx.AsyncClient
    follower: httpx.AsyncClient
    smtp: SmtpServer
    auditor: dict[str, str]
    # Every link followed, as (endpoint, body): for replays and the leak check.
    followed: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def token(self, address: str, subject: str, within: float = 10.0) -> str:
        """The token of the newest mail to `address` whose subject has `subject`."""
        deadline = time.monotonic() + within
        while not (mails := [m for m in self.smtp.mails_to(address) if subject in m["Subject"]]):
            assert time.monotonic() < deadline, f"no {subject!r} mail to {address}"
            await asyncio.sleep(0.02)
        return link_of(mails[-1])[1]

    async def follow(self, endpoint: str, token: str, **extra: str) -> None:
        """Follow a link: its page posts the token to `endpoint`."""
        body = {"token": token, **extra}
        followed = await self.follower.post(f"/api/auth/{endpoint}", json=body)
        assert followed.status_code == 204, followed.text
        self.followed.append((endpoint, body))

    async def audit_trail(self, event: EventType | None = None) -> httpx.Response:
        """The auditor's list of every account's events (of one type)."""
        query: dict[str, Any] = {"limit": 100} | ({"type": event.value} if event else {})
        answer = await self.http.get("/api/audit/events", params=query, headers=self.auditor)
        assert answer.status_code == 200, answer.text
        assert answer.json()["next_cursor"] is None  # everything on one page
        return answer

    async def events(self, event: EventType | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.audit_trail(event)).json()["items"]
        return items


@pytest.fixture
async def links(
    settings: Settings, smtp: SmtpServer, admin_tokens: dict[str, Any]
) -> AsyncIterator[Links]:
    async with (
        mail_app(settings, smtp) as (application, http),
        client_at(application, FOLLOWER_ADDRESS) as follower,
    ):
        follower.headers["User-Agent"] = FOLLOWER_AGENT
        yield Links(http, follower, smtp, bearer(admin_tokens["access_token"]))


# --- The flows, each a step of the account's life ----------------------------------


async def register_owner(links: Links) -> int:
    """Register the account (its verification link is mailed); its id."""
    user_id: int = (await register(links.http, OWNER))["user"]["id"]
    return user_id


async def verify_registration(links: Links) -> None:
    await links.follow("verify-email", await links.token(OWNER, VERIFY))


async def request_email_change(links: Links) -> None:
    """The owner, signed in, asks to move the account to NEW_ADDRESS."""
    pair = await login(links.http, OWNER)
    changed = await links.http.patch(
        "/api/users/me",
        json={"email": NEW_ADDRESS, "current_password": PASSWORD},
        headers=bearer(pair["access_token"]),
    )
    assert changed.status_code == 200, changed.text


async def confirm_email_change(links: Links) -> None:
    await links.follow("verify-email", await links.token(NEW_ADDRESS, CONFIRM_CHANGE))


async def change_email(links: Links) -> None:
    await request_email_change(links)
    await confirm_email_change(links)


async def secure_account(links: Links) -> None:
    """ "This wasn't me": the old address follows the notice's link."""
    await links.follow("secure-account", await links.token(OWNER, UNDO))


async def reset_password(links: Links) -> None:
    asked = await links.http.post("/api/auth/password-recovery", json={"email": OWNER})
    assert asked.status_code == 202
    token = await links.token(OWNER, RESET)
    await links.follow("reset-password", token, new_password=NEW_PASSWORD)


async def live_the_whole_story(links: Links) -> int:
    """Every link, in turn: verified, moved, taken back, its password reset."""
    user_id = await register_owner(links)
    await verify_registration(links)
    await change_email(links)
    await secure_account(links)
    await reset_password(links)
    return user_id


def assert_followed_link(
    event: dict[str, Any], user_id: int, event_type: EventType, details: dict[str, str]
) -> None:
    """The event of a link: no actor (nobody signed in), the account as its
    target, the follower's address and User-Agent, these details."""
    recorded = {key: event[key] for key in ("type", "actor_id", "target_id")}
    assert recorded == {
        "type": event_type.value,
        "actor_id": None,
        "target_id": user_id,
    }
    assert (event["client_address"], event["user_agent"]) == (FOLLOWER_ADDRESS, FOLLOWER_AGENT)
    assert event["details"] == details


# --- One event per link followed ---------------------------------------------------


async def test_a_password_reset_by_its_link_records_password_reset(links: Links) -> None:
    user_id = await register_owner(links)
    await reset_password(links)
    [event] = await links.events(EventType.PASSWORD_RESET)
    assert_followed_link(event, user_id, EventType.PASSWORD_RESET, {})


async def test_following_the_new_addresss_link_records_email_changed_from_and_to(
    links: Links,
) -> None:
    user_id = await register_owner(links)
    await request_email_change(links)
    assert await links.events(EventType.EMAIL_CHANGED) == []  # asking changes nothing yet
    await confirm_email_change(links)
    [event] = await links.events(EventType.EMAIL_CHANGED)
    assert_followed_link(
        event, user_id, EventType.EMAIL_CHANGED, {"from": OWNER, "to": NEW_ADDRESS}
    )


async def test_the_registration_link_records_email_verified(links: Links) -> None:
    user_id = await register_owner(links)
    await verify_registration(links)
    [event] = await links.events(EventType.EMAIL_VERIFIED)
    assert_followed_link(event, user_id, EventType.EMAIL_VERIFIED, {"email": OWNER})


@pytest.mark.parametrize(
    ("before_undo", "now_at"),
    [
        pytest.param(change_email, NEW_ADDRESS, id="change-confirmed"),
        pytest.param(request_email_change, OWNER, id="change-pending"),
    ],
)
async def test_the_wasnt_me_link_records_account_secured_from_and_to(
    links: Links, before_undo: Callable[[Links], Awaitable[None]], now_at: str
) -> None:
    """From the address the account had when the link was followed, back to the
    one the notice was mailed to (the same, if the change was still pending)."""
    user_id = await register_owner(links)
    await before_undo(links)
    await secure_account(links)
    [event] = await links.events(EventType.ACCOUNT_SECURED)
    assert_followed_link(event, user_id, EventType.ACCOUNT_SECURED, {"from": now_at, "to": OWNER})


async def test_the_account_lists_its_link_events_among_its_own(links: Links) -> None:
    user_id = await live_the_whole_story(links)
    pair = await login(links.http, OWNER, NEW_PASSWORD)
    own = await links.http.get(
        "/api/users/me/events", params={"limit": 100}, headers=bearer(pair["access_token"])
    )
    assert own.status_code == 200, own.text
    by_link = [
        event
        for event in own.json()["items"]
        if event["client_address"] == FOLLOWER_ADDRESS and event["target_id"] == user_id
    ]
    assert [event["type"] for event in by_link] == [  # newest first
        EventType.PASSWORD_RESET,
        EventType.ACCOUNT_SECURED,
        EventType.EMAIL_CHANGED,
        EventType.EMAIL_VERIFIED,
    ]
    for event in by_link:
        assert_followed_link(event, user_id, EventType(event["type"]), event["details"])
    # The same events as the auditor sees them.
    audited = [event for event in await links.events() if event["target_id"] == user_id]
    assert [event for event in audited if event in by_link] == by_link


async def test_no_event_holds_a_links_token_or_a_password(links: Links) -> None:
    user_id = await live_the_whole_story(links)
    pair = await login(links.http, OWNER, NEW_PASSWORD)
    own = await links.http.get(
        "/api/users/me/events", params={"limit": 100}, headers=bearer(pair["access_token"])
    )
    trail = (await links.audit_trail()).text
    assert len(links.followed) == 4  # verify, confirm the change, secure, reset
    assert f'"target_id":{user_id}' in trail  # the story's events are in it
    for text in (trail, own.text):
        for _, body in links.followed:
            assert body["token"] not in text
        for password in (PASSWORD, NEW_PASSWORD):
            assert password not in text
        assert "$2b$" not in text  # nor a password's bcrypt hash


# --- A refused link records nothing ------------------------------------------------


@pytest.mark.parametrize(
    "spend",
    [
        pytest.param(verify_registration, id="verify-email"),
        pytest.param(change_email, id="email-change"),
        pytest.param(secure_account, id="secure-account"),
        pytest.param(reset_password, id="reset-password"),
    ],
)
async def test_a_link_followed_again_is_refused_and_records_nothing(
    links: Links, spend: Callable[[Links], Awaitable[None]]
) -> None:
    await register_owner(links)
    if spend is secure_account:
        await request_email_change(links)  # the notice with the link
    await spend(links)
    before = await links.events()
    endpoint, body = links.followed[-1]
    again = await links.follower.post(f"/api/auth/{endpoint}", json=body)
    assert again.status_code == 400, again.text
    assert await links.events() == before


@pytest.mark.parametrize(
    ("endpoint", "extra"),
    [
        ("verify-email", {}),
        ("secure-account", {}),
        ("reset-password", {"new_password": NEW_PASSWORD}),
    ],
)
async def test_a_forged_link_is_refused_and_records_nothing(
    links: Links, endpoint: str, extra: dict[str, str]
) -> None:
    await register_owner(links)
    await request_email_change(links)  # outstanding links of every kind but reset
    before = await links.events()
    forged = {"token": secrets.token_urlsafe(32), **extra}
    refused = await links.follower.post(f"/api/auth/{endpoint}", json=forged)
    assert refused.status_code == 400, refused.text
    assert await links.events() == before
