"""Password guessing: counted atomically before the check, per client and per
account, with known devices immune to strangers' failures."""

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import CLIENT_ADDRESS, PASSWORD, app_with, bearer, client_at, register

WRONG = {"username": "ada@example.com", "password": "not the password"}
RIGHT = {"username": "ada@example.com", "password": PASSWORD}


async def test_a_burst_of_wrong_passwords_gets_exactly_the_limit_checked(
    client: httpx.AsyncClient,
    attacker: httpx.AsyncClient,
    settings: Settings,
    bcrypt_checks: list[bytes],
) -> None:
    await register(client)
    burst = await asyncio.gather(*(attacker.post("/api/token/", data=WRONG) for _ in range(30)))
    statuses = Counter(response.status_code for response in burst)
    limit = settings.LOGIN_MAX_FAILURES
    assert statuses == {401: limit, 429: 30 - limit}
    assert len(bcrypt_checks) == limit


async def test_a_success_from_an_unknown_client_does_not_reset_the_count(
    app: FastAPI, client: httpx.AsyncClient, attacker: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client)
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert (await attacker.post("/api/token/", data=WRONG)).status_code == 401
    # Someone at the attacker's address (with no device cookie) logs in fine...
    async with client_at(app, "198.51.100.66") as neighbour:
        assert (await neighbour.post("/api/token/", data=RIGHT)).status_code == 200
    # ...and the attacker's count goes on from where it was.
    assert (await attacker.post("/api/token/", data=WRONG)).status_code == 401
    assert (await attacker.post("/api/token/", data=WRONG)).status_code == 429


async def test_failures_from_many_addresses_are_capped_per_account(
    app: FastAPI, settings: Settings
) -> None:
    async with app_with(settings, LOGIN_ACCOUNT_MAX_FAILURES=10) as capped:
        async with client_at(capped, CLIENT_ADDRESS) as owner:
            await register(owner)
        statuses = []
        for number in range(15):
            async with client_at(capped, f"198.51.100.{number + 1}") as sprayer:
                statuses.append((await sprayer.post("/api/token/", data=WRONG)).status_code)
    assert statuses == [401] * 10 + [429] * 5


async def test_a_known_device_logs_in_while_strangers_are_locked_out(
    app: FastAPI, settings: Settings
) -> None:
    async with (
        app_with(settings, LOGIN_ACCOUNT_MAX_FAILURES=8) as capped,
        client_at(capped, CLIENT_ADDRESS) as owner,
    ):
        await register(owner)  # the owner's client now holds a device cookie
        # A stranger at the owner's own address, then strangers everywhere:
        async with client_at(capped, CLIENT_ADDRESS) as stranger:
            for _ in range(6):
                await stranger.post("/api/token/", data=WRONG)
            assert (await stranger.post("/api/token/", data=RIGHT)).status_code == 429
        for number in range(10):
            async with client_at(capped, f"198.51.100.{number + 1}") as sprayer:
                await sprayer.post("/api/token/", data=WRONG)
        # Both keys of unknown clients are exhausted; the known device is not.
        assert (await owner.post("/api/token/", data=RIGHT)).status_code == 200
        # Its own failures still count, against it alone.
        owner_statuses = [
            (await owner.post("/api/token/", data=WRONG)).status_code for _ in range(6)
        ]
    assert owner_statuses == [401] * 5 + [429]


async def test_a_forged_device_cookie_is_treated_as_none(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client)
    attacker.cookies.set("login_device", "not-a-token", domain="testserver", path="/api/token")
    statuses = [
        (await attacker.post("/api/token/", data=WRONG)).status_code
        for _ in range(settings.LOGIN_MAX_FAILURES + 1)
    ]
    assert statuses[-1] == 429


async def test_a_device_cookie_is_set_httponly_secure_and_for_the_token_path_only(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
    )
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("login_device=")
    for attribute in ("httponly", "secure", "samesite=strict", "path=/api/token"):
        assert attribute in cookie


async def test_guesses_of_the_current_password_are_throttled(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register(client)
    statuses = []
    for _ in range(settings.LOGIN_MAX_FAILURES + 1):
        response = await client.post(
            "/api/users/me/password",
            json={"current_password": "a wrong guess", "new_password": "a brand new password"},
            headers=bearer(user["access_token"]),
        )
        statuses.append(response.status_code)
    assert statuses == [400] * settings.LOGIN_MAX_FAILURES + [429]
    assert int(response.headers["Retry-After"]) > 0


async def device_cookies(app: FastAPI, count: int) -> list[str]:
    """The owner logs in `count` times, each from a fresh client: that many
    different device cookies."""
    cookies = []
    for number in range(count):
        async with client_at(app, f"203.0.113.{number + 10}") as device:
            answer = await device.post("/api/token/", data=RIGHT)
            assert answer.status_code == 200, answer.text
            cookies.append(answer.cookies["login_device"])
    return cookies


async def guesses_with(app: FastAPI, cookies: list[str], each: int) -> list[int]:
    """From one address, `each` wrong guesses with every cookie in turn."""
    statuses = []
    async with client_at(app, "198.51.100.66") as thief:
        for cookie in cookies:
            for _ in range(each):
                guess = await thief.post(
                    "/api/token/", data=WRONG, headers={"Cookie": f"login_device={cookie}"}
                )
                statuses.append(guess.status_code)
    return statuses


@pytest.mark.parametrize("ending", ["password change", "logout-all", "admin ends sessions"])
async def test_ending_every_session_voids_every_device_cookie(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    admin_tokens: dict[str, Any],
    ending: str,
) -> None:
    owner = await register(client)
    cookies = await device_cookies(app, 3)
    token = bearer(owner["access_token"])
    if ending == "password change":
        body = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
        ended = await client.post("/api/users/me/password", json=body, headers=token)
    elif ending == "logout-all":
        ended = await client.post("/api/auth/logout-all", headers=token)
    else:
        ended = await client.delete(
            f"/api/users/{owner['user']['id']}/sessions",
            headers=bearer(admin_tokens["access_token"]),
        )
    assert ended.status_code == 204
    # Old cookies are unknown devices now: the guesser's address is counted.
    statuses = await guesses_with(app, cookies, settings.LOGIN_MAX_FAILURES)
    limit = settings.LOGIN_MAX_FAILURES
    assert statuses == [401] * limit + [429] * (len(statuses) - limit)


async def test_known_devices_together_are_capped_per_account(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client)
    cookies = await device_cookies(app, 5)
    statuses = await guesses_with(app, cookies, settings.LOGIN_MAX_FAILURES)
    ceiling = 20  # LOGIN_DEVICE_ACCOUNT_MAX_FAILURES' default
    assert statuses == [401] * ceiling + [429] * (len(statuses) - ceiling)
