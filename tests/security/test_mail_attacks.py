"""Attacks on password recovery and email verification.

Enumeration: asking for a reset or a verification mail answers every address
alike (status, headers, body), costs the same SQL statements and no bcrypt, and
takes the same time; the differing work (looking the account up, issuing a token,
composing, sending) is the sender's, after the answer (app/services/account_mail.py).

Tokens: a mailed token is single use, for its purpose and its address only. Forged
ones, the stored hash, JWTs, near misses, a verification token presented as a
reset token (and the reverse), a deactivated account's: 400, nothing changed; of
concurrent uses of one token exactly one succeeds.
"""

import asyncio
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth import one_time_tokens
from app.config import Settings
from app.models import utcnow
from tests.conftest import PASSWORD, app_with, bearer, client_at, login, register
from tests.security.answers import answer
from tests.security.surface import snapshot
from tests.security.test_enumeration import counting

NEW_PASSWORD = "a brand new passphrase"
NOT_VALID = {"detail": "This link is not valid: request a new one"}
MAIL_REQUESTS = ["/api/auth/password-recovery", "/api/auth/verify-email/resend"]


@pytest.fixture
async def accounts(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> dict[str, Any]:
    """ada (active, unverified), vera (verified), eve (deactivated), root (admin)."""
    ada = await register(client, "ada@example.com")
    vera = await register(client, "vera@example.com")
    eve = await register(client, "eve@example.com")
    admin = bearer(admin_tokens["access_token"])
    for user, change in ((vera, {"is_verified": True}), (eve, {"is_active": False})):
        changed = await client.patch(f"/api/users/{user['user']['id']}", json=change, headers=admin)
        assert changed.status_code == 200, changed.text
    return {"ada": ada, "vera": vera, "eve": eve}


ADDRESSES = {
    "unknown": "nobody@example.com",
    "active": "ada@example.com",
    "active, other spelling": " ADA@Example.com ",
    "verified": "vera@example.com",
    "deactivated": "eve@example.com",
    "the superuser": "root@example.com",
}


@pytest.mark.parametrize("path", MAIL_REQUESTS)
async def test_every_address_gets_the_same_status_headers_and_body(
    client: httpx.AsyncClient, accounts: dict[str, Any], path: str
) -> None:
    answers = {
        kind: answer(await client.post(path, json={"email": email}))
        for kind, email in ADDRESSES.items()
    }
    assert answers["unknown"][0] == 202
    assert answers == dict.fromkeys(ADDRESSES, answers["unknown"])


@pytest.mark.parametrize("path", MAIL_REQUESTS)
async def test_every_address_costs_the_same_statements_and_no_bcrypt(
    client: httpx.AsyncClient,
    app: FastAPI,
    accounts: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    costs = {}
    for kind, email in ADDRESSES.items():
        with counting(app, monkeypatch) as cost:
            response = await client.post(path, json={"email": email})
        assert response.status_code == 202, kind
        costs[kind] = cost
    assert costs["unknown"].checks == []
    assert costs["unknown"].hashes == 0
    assert costs == dict.fromkeys(ADDRESSES, costs["unknown"])


@pytest.mark.parametrize("path", MAIL_REQUESTS)
async def test_the_limit_answers_alike_for_known_and_unknown_addresses(
    client: httpx.AsyncClient, accounts: dict[str, Any], settings: Settings, path: str
) -> None:
    for email in ("ada@example.com", "nobody@example.com"):
        for _ in range(settings.MAIL_REQUESTS_PER_EMAIL):
            assert (await client.post(path, json={"email": email})).status_code == 202
    known = await client.post(path, json={"email": "ada@example.com"})
    unknown = await client.post(path, json={"email": "nobody@example.com"})
    assert known.status_code == 429
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert abs(int(known.headers["Retry-After"]) - int(unknown.headers["Retry-After"])) <= 1


async def test_recovery_takes_the_same_time_for_known_and_unknown_addresses(
    settings: Settings, app: FastAPI
) -> None:
    """Medians of interleaved requests, each for a fresh address (no limit is met):
    an existing account's and an unknown address's are within a factor of 1.5."""
    rounds = 40
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users (email, hashed_password) "
                "SELECT 'known' || n || '@example.com', 'x' FROM generate_series(1, :n) AS n"
            ),
            {"n": rounds},
        )
    durations: dict[str, list[float]] = {"known": [], "unknown": []}
    async with (
        app_with(settings, MAIL_REQUESTS_PER_CLIENT=10 * rounds) as timed,
        client_at(timed, "203.0.113.50") as http,
    ):
        for warm_up in range(5):
            await http.post("/api/auth/password-recovery", json={"email": f"w{warm_up}@x.example"})
        for n in range(1, rounds + 1):
            for kind in ("known", "unknown") if n % 2 else ("unknown", "known"):
                started = time.perf_counter()
                response = await http.post(
                    "/api/auth/password-recovery", json={"email": f"{kind}{n}@example.com"}
                )
                durations[kind].append(time.perf_counter() - started)
                assert response.status_code == 202
    known, unknown = (statistics.median(durations[kind]) for kind in ("known", "unknown"))
    assert 1 / 1.5 < known / unknown < 1.5, (known, unknown)


async def issue(app: FastAPI, user_id: int, email: str, purpose: one_time_tokens.Purpose) -> str:
    """A token as the sender issues it for a mail (white box: no SMTP needed)."""
    async with app.state.session_factory() as db:
        token = await one_time_tokens.issue(
            db=db,
            user_id=user_id,
            purpose=purpose,
            email=email,
            lifetime=timedelta(minutes=30),
            now=utcnow(),
        )
        await db.commit()
    return token


async def stored_hash(app: FastAPI) -> str:
    async with app.state.engine.connect() as connection:
        value: str = await connection.scalar(text("SELECT token_hash FROM one_time_tokens LIMIT 1"))
    return value


ENDPOINTS: dict[one_time_tokens.Purpose, tuple[str, Callable[[str], dict[str, str]]]] = {
    "reset": (
        "/api/auth/reset-password",
        lambda token: {"token": token, "new_password": NEW_PASSWORD},
    ),
    "verify": ("/api/auth/verify-email", lambda token: {"token": token}),
}


def forgeries(genuine: str, *, stored: str, pair: dict[str, Any]) -> dict[str, str]:
    return {
        "random": secrets.token_urlsafe(32),
        "the stored hash (a leaked table)": stored,
        "an access token": pair["access_token"],
        "a refresh token": pair["refresh_token"],
        "truncated": genuine[:-1],
        "one character more": genuine + "A",
        "another case": genuine.swapcase(),
        "with spaces": f" {genuine} ",
        "percent-encoded": genuine.replace("-", "%2D").replace("_", "%5F") + "%00",
        "SQL": "' OR '1'='1",
        "a path": "../../etc/passwd",
    }


@pytest.mark.parametrize("purpose", ["reset", "verify"])
async def test_forged_tokens_are_400_and_change_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    accounts: dict[str, Any],
    purpose: one_time_tokens.Purpose,
) -> None:
    ada = accounts["ada"]
    genuine = await issue(app, ada["user"]["id"], "ada@example.com", purpose)
    path, body = ENDPOINTS[purpose]
    attempts = forgeries(genuine, stored=await stored_hash(app), pair=ada)
    before = await snapshot(app)
    outcomes = {}
    for name, token in attempts.items():
        response = await client.post(path, json=body(token))
        outcomes[name] = (response.status_code, response.json())
    # A JWT is far longer than any mailed token: refused by its shape, unhashed.
    too_long = (422, "string_too_long")
    for jwt in ("an access token", "a refresh token"):
        status, refusal = outcomes.pop(jwt)
        assert (status, refusal["detail"][0]["type"]) == too_long
    assert outcomes == dict.fromkeys(outcomes, (400, NOT_VALID))
    assert await snapshot(app) == before
    assert (await client.post(path, json=body(genuine))).status_code == 204  # the control


async def test_a_verification_token_does_not_reset_a_password_nor_the_reverse(
    client: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Any]
) -> None:
    ada = accounts["ada"]
    verify_token = await issue(app, ada["user"]["id"], "ada@example.com", "verify")
    reset_token = await issue(app, ada["user"]["id"], "ada@example.com", "reset")
    before = await snapshot(app)
    as_reset = await client.post(
        "/api/auth/reset-password", json={"token": verify_token, "new_password": NEW_PASSWORD}
    )
    as_verify = await client.post("/api/auth/verify-email", json={"token": reset_token})
    assert (as_reset.status_code, as_reset.json()) == (400, NOT_VALID)
    assert (as_verify.status_code, as_verify.json()) == (400, NOT_VALID)
    assert await snapshot(app) == before
    await login(client)  # the password is unchanged
    # Each still does its own job.
    assert (
        await client.post("/api/auth/verify-email", json={"token": verify_token})
    ).status_code == 204
    reset = await client.post(
        "/api/auth/reset-password", json={"token": reset_token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204


async def test_a_token_acts_only_on_its_own_account(
    client: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Any]
) -> None:
    """Vera's token spent by whoever holds it (Ada, logged in) changes Vera's
    password, never the caller's: the token names its account, no request can."""
    vera = accounts["vera"]
    token = await issue(app, vera["user"]["id"], "vera@example.com", "reset")
    reset = await client.post(
        "/api/auth/reset-password",
        json={"token": token, "new_password": NEW_PASSWORD},
        headers=bearer(accounts["ada"]["access_token"]),
    )
    assert reset.status_code == 204
    await login(client, "ada@example.com", PASSWORD)
    await login(client, "vera@example.com", NEW_PASSWORD)


async def test_a_deactivated_accounts_token_is_refused(
    client: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Any]
) -> None:
    eve = accounts["eve"]
    for purpose, (path, body) in ENDPOINTS.items():
        token = await issue(app, eve["user"]["id"], "eve@example.com", purpose)
        refused = await client.post(path, json=body(token))
        assert (refused.status_code, refused.json()) == (400, NOT_VALID)


async def test_of_concurrent_uses_of_one_token_exactly_one_succeeds(
    client: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Any]
) -> None:
    token = await issue(app, accounts["ada"]["user"]["id"], "ada@example.com", "reset")
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/auth/reset-password",
                json={"token": token, "new_password": f"concurrent password {n}"},
            )
            for n in range(8)
        )
    )
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [204] + [400] * 7
    refused = {response.json()["detail"] for response in answers if response.status_code == 400}
    assert refused == {"This link was already used: request a new one"}


# --- Links that must stay dead, and the per-address mail limit ----------------------


async def test_an_email_change_voids_the_accounts_outstanding_links(
    client: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    ada = accounts["ada"]
    token = await issue(app, ada["user"]["id"], "ada@example.com", "reset")
    url, admin = f"/api/users/{ada['user']['id']}", bearer(admin_tokens["access_token"])
    for address in ("ada@elsewhere.example", "ada@example.com"):
        assert (await client.patch(url, json={"email": address}, headers=admin)).status_code == 200
    refused = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert refused.status_code == 400
    await login(client, "ada@example.com", PASSWORD)


async def test_deactivation_voids_the_accounts_outstanding_links(
    client: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    ada = accounts["ada"]
    token = await issue(app, ada["user"]["id"], "ada@example.com", "reset")
    url, admin = f"/api/users/{ada['user']['id']}", bearer(admin_tokens["access_token"])
    for active in (False, True):
        assert (await client.patch(url, json={"is_active": active}, headers=admin)).is_success
    refused = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert refused.status_code == 400
    await login(client, "ada@example.com", PASSWORD)


async def mails_queued_to(app: FastAPI, address: str) -> int:
    async with app.state.engine.connect() as connection:
        count: int = await connection.scalar(
            text("SELECT count(*) FROM mail_outbox WHERE recipient = :address"),
            {"address": address},
        )
    return count


async def test_registering_an_address_again_and_again_is_held_to_its_mail_limit(
    app: FastAPI, settings: Settings
) -> None:
    async with app_with(settings, MAIL_PER_ADDRESS_MAX=4) as capped:
        async with client_at(capped, "198.51.100.66") as squatter:
            for _ in range(6):
                pair = await register(squatter, "victim@example.com")
                deleted = await squatter.delete(
                    "/api/users/me", headers=bearer(pair["access_token"])
                )
                assert deleted.status_code == 204
        assert await mails_queued_to(capped, "victim@example.com") == 4


async def test_email_changes_to_an_address_are_held_to_its_mail_limit(
    app: FastAPI, settings: Settings
) -> None:
    async with app_with(settings, MAIL_PER_ADDRESS_MAX=4) as capped:
        async with client_at(capped, "198.51.100.66") as thief:
            pair = await register(thief, "thief@evil.example")
            statuses = []
            for _ in range(5):
                changed = await thief.patch(
                    "/api/users/me",
                    json={"email": "victim@example.com", "current_password": PASSWORD},
                    headers=bearer(pair["access_token"]),
                )
                statuses.append(changed.status_code)
        # The account's own registration mail went to thief@, not the victim.
        assert statuses == [200] * 4 + [429]
        assert await mails_queued_to(capped, "victim@example.com") == 4


async def test_a_strangers_requests_do_not_spend_the_owners_recovery(
    client: httpx.AsyncClient,
    attacker: httpx.AsyncClient,
    accounts: dict[str, Any],
    settings: Settings,
) -> None:
    """The per-address limit a single client can spend is its own share: the
    owner, elsewhere, still gets a link."""
    asked = {"email": "ada@example.com"}
    strangers = [
        (await attacker.post("/api/auth/password-recovery", json=asked)).status_code
        for _ in range(settings.MAIL_REQUESTS_PER_EMAIL + 1)
    ]
    assert strangers == [202] * settings.MAIL_REQUESTS_PER_EMAIL + [429]
    owner = await client.post("/api/auth/password-recovery", json=asked)
    assert owner.status_code == 202


async def test_strangers_at_many_addresses_are_capped_per_address(
    app: FastAPI, accounts: dict[str, Any], settings: Settings
) -> None:
    """Spread over many clients, requests stop at the address's ceiling (each
    of them mailed the owner a working link)."""
    statuses = []
    async with app_with(settings, MAIL_PER_ADDRESS_MAX=5) as capped:
        for number in range(7):
            async with client_at(capped, f"198.51.100.{number + 1}") as stranger:
                answer = await stranger.post(
                    "/api/auth/password-recovery", json={"email": "ada@example.com"}
                )
                statuses.append(answer.status_code)
    # ada's registration mail was the first of the five.
    assert statuses == [202] * 4 + [429] * 3
