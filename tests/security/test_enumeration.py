"""Account enumeration through login and register: what an answer and its cost
reveal about whether an email has an account.

Timing is proven by counting, not by a clock: every failed login pays exactly one
bcrypt check at the configured cost and runs the same SQL statements, whatever
the reason it failed. Registering a taken email is a 409 by contract: an accepted
channel (SECURITY.md), rate-limited by Traefik, and it costs what a success costs.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from app.config import Settings
from tests.auth.second_factor import TotpClock, enable
from tests.conftest import PASSWORD, bearer, register
from tests.security.answers import answer

WRONG = "not the password at all"
TOO_LONG = PASSWORD + "x" * 80  # over bcrypt's 72 bytes
# Every way a login can fail, as (email, password); "ada" exists, "eve" is
# deactivated, "admin" is the superuser, "tia" has a second factor, "nobody"
# does not exist.
FAILURES = {
    "unknown email": ("nobody@example.com", WRONG),
    "wrong password": ("ada@example.com", WRONG),
    "wrong password, email in another case": (" ADA@Example.com ", WRONG),
    "wrong password for the superuser": ("root@example.com", WRONG),
    "wrong password, account with a second factor": ("tia@example.com", WRONG),
    "right password, deactivated account": ("eve@example.com", PASSWORD),
    "wrong password, deactivated account": ("eve@example.com", WRONG),
    "password over 72 bytes, known email": ("ada@example.com", TOO_LONG),
    "password over 72 bytes, unknown email": ("nobody@example.com", TOO_LONG),
    "empty password, known email": ("ada@example.com", ""),
}
ENCODINGS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "form": lambda email, password: {"data": {"username": email, "password": password}},
    "json": lambda email, password: {"json": {"email": email, "password": password}},
}


@dataclass
class Cost:
    """What the app did while answering: bcrypt checks (the hashes' cost prefixes),
    bcrypt hashes, and SQL statements."""

    checks: list[str] = field(default_factory=list)
    hashes: int = 0
    statements: int = 0


@contextmanager
def counting(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cost]:
    cost = Cost()
    real_checkpw, real_hashpw = bcrypt.checkpw, bcrypt.hashpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        cost.checks.append(hashed.decode()[:7])  # "$2b$12$": algorithm and cost
        return real_checkpw(password, hashed)

    def hashpw(password: bytes, salt: bytes) -> bytes:
        cost.hashes += 1
        return real_hashpw(password, salt)

    def count_statement(*_: Any) -> None:
        cost.statements += 1

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count_statement)
    with monkeypatch.context() as patch:
        patch.setattr(bcrypt, "checkpw", checkpw)
        patch.setattr(bcrypt, "hashpw", hashpw)
        try:
            yield cost
        finally:
            event.remove(engine, "before_cursor_execute", count_statement)


@pytest.fixture
async def accounts(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    """ada (active), eve (deactivated), root (the admin), tia (a second factor);
    then a first failed login so the dummy hash for unknown emails exists before
    anything is counted."""
    await register(client, "ada@example.com")
    tia = await register(client, "tia@example.com")
    await enable(client, tia["access_token"], totp_clock)
    eve = await register(client, "eve@example.com")
    deactivated = await client.patch(
        f"/api/users/{eve['user']['id']}",
        json={"is_active": False},
        headers=bearer(admin_tokens["access_token"]),
    )
    assert deactivated.status_code == 200, deactivated.text
    warm_up = await client.post(
        "/api/token/", data={"username": "warm@example.com", "password": WRONG}
    )
    assert warm_up.status_code == 401
    client.cookies.clear()  # no device cookie from registering: every attempt is a stranger's


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_every_failed_login_gets_the_same_status_headers_and_body(
    client: httpx.AsyncClient, accounts: None, encoding: str
) -> None:
    answers = {
        failure: answer(await client.post("/api/token/", **ENCODINGS[encoding](*credentials)))
        for failure, credentials in FAILURES.items()
    }
    assert answers["unknown email"][0] == 401
    assert answers == dict.fromkeys(FAILURES, answers["unknown email"])


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_every_failed_login_costs_one_bcrypt_check_and_the_same_queries(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    accounts: None,
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
) -> None:
    costs = {}
    for failure, credentials in FAILURES.items():
        with counting(app, monkeypatch) as cost:
            response = await client.post("/api/token/", **ENCODINGS[encoding](*credentials))
        assert response.status_code == 401, failure
        costs[failure] = cost
    configured = f"$2b${settings.BCRYPT_ROUNDS:02d}$"
    assert (costs["unknown email"].checks, costs["unknown email"].hashes) == ([configured], 0)
    assert costs == dict.fromkeys(FAILURES, costs["unknown email"])


async def test_the_throttle_answers_alike_for_known_and_unknown_emails(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    accounts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {}
    for email in ("ada@example.com", "nobody@example.com"):
        for _ in range(settings.LOGIN_MAX_FAILURES):
            failed = await client.post("/api/token/", data={"username": email, "password": WRONG})
            assert failed.status_code == 401
        with counting(app, monkeypatch) as cost:
            throttled = await client.post(
                "/api/token/", data={"username": email, "password": WRONG}
            )
        # Retry-After counts down from each email's own first failure.
        headers = {k: v for k, v in answer(throttled)[1].items() if k != "retry-after"}
        answers[email] = throttled.status_code, headers, throttled.content, cost.checks
    assert answers["nobody@example.com"][0] == 429
    assert answers["ada@example.com"] == answers["nobody@example.com"]
    assert answers["ada@example.com"][3] == []  # refused before any bcrypt work


@pytest.mark.parametrize("spelling", ["ada@example.com", "ADA@EXAMPLE.COM", "  Ada@Example.com "])
async def test_a_taken_email_is_409_at_the_cost_of_a_success(
    client: httpx.AsyncClient,
    app: FastAPI,
    accounts: None,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    with counting(app, monkeypatch) as taken_cost:
        taken = await client.post(
            "/api/auth/register", json={"email": spelling, "password": PASSWORD}
        )
    with counting(app, monkeypatch) as free_cost:
        free = await client.post(
            "/api/auth/register", json={"email": "new@example.com", "password": PASSWORD}
        )
    assert taken.status_code == 409
    assert taken.json() == {"detail": "A user with this email already exists"}
    assert free.status_code == 201
    # One bcrypt hash either way: the 409 is not faster than a 201.
    assert (taken_cost.hashes, free_cost.hashes) == (1, 1)
