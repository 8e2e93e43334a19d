"""Attacks on the second factor: replaying a code (one after the other, and two
at the very same moment), reusing a challenge, guessing past a challenge's five
codes or the login throttle, a challenge outliving a password change, forged and
expired challenges, the secret read from the database, an API key turning the
factor off, one account's challenge finishing another's login, guessing a code
with a stolen session, and rotating the encryption key."""

import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from app.auth import login_challenges
from app.auth.totp_rotate import rotate
from app.config import Settings
from app.exceptions import InvalidSecondStep
from tests.audit.helpers import MY_EVENTS, events
from tests.auth.second_factor import (
    TOTP_PATH,
    TotpClock,
    challenge_for,
    enable,
    password_login,
    second_step,
    set_up,
)
from tests.auth.test_api_keys import create_key
from tests.conftest import (
    ATTACKER_ADDRESS,
    CLIENT_ADDRESS,
    PASSWORD,
    TEST_TOTP_KEY,
    app_with,
    bearer,
    client_at,
    me,
    register,
)
from tests.security.surface import snapshot

NEW_KEY = Fernet.generate_key().decode()
# What a refused request must leave as it was (a key's use itself is recorded).
SECOND_FACTOR_TABLES = (
    "totp_credentials",
    "recovery_codes",
    "login_challenges",
    "login_failures",
    "audit_events",
)


@pytest.fixture
async def ada(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> tuple[str, Any]:
    """Ada, second factor on: her registration's access token, and the factor."""
    token: str = user_tokens["access_token"]
    return token, await enable(client, token, totp_clock)


def at_the_same_moment(monkeypatch: pytest.MonkeyPatch, parties: int = 2) -> None:
    """Hold each second step just before it spends its challenge until `parties`
    of them got there: all have checked the same code, none has spent anything."""
    barrier = asyncio.Barrier(parties)
    real = login_challenges.spend

    async def spend_together(**kwargs: Any) -> bool:
        await asyncio.wait_for(barrier.wait(), timeout=10)
        return await real(**kwargs)

    monkeypatch.setattr(login_challenges, "spend", spend_together)


async def test_a_code_is_accepted_once(
    client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock
) -> None:
    code = totp_clock.code(ada[1].secret)
    assert (await second_step(client, await challenge_for(client), code)).status_code == 200
    replayed = await second_step(client, await challenge_for(client), code)
    assert replayed.status_code == 401
    # An older code of the window is no good either once a later one was used.
    older = totp_clock.code(ada[1].secret, offset=-1)
    assert (await second_step(client, await challenge_for(client), older)).status_code == 401
    # The next step's code is.
    totp_clock.advance()
    fresh = totp_clock.code(ada[1].secret)
    assert (await second_step(client, await challenge_for(client), fresh)).status_code == 200


async def test_one_code_sent_twice_at_the_same_moment_opens_one_session(
    client: httpx.AsyncClient,
    ada: tuple[str, Any],
    totp_clock: TotpClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two logins, each with its own challenge, the same code checked by both
    before either spends it: the credential's step moves once."""
    challenges = [await challenge_for(client), await challenge_for(client)]
    code = totp_clock.code(ada[1].secret)
    at_the_same_moment(monkeypatch)
    answers = await asyncio.gather(*(second_step(client, c, code) for c in challenges))
    assert sorted(answer.status_code for answer in answers) == [200, 401]


async def test_one_challenge_answered_twice_at_the_same_moment_opens_one_session(
    client: httpx.AsyncClient,
    ada: tuple[str, Any],
    totp_clock: TotpClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    challenge = await challenge_for(client)
    code = totp_clock.code(ada[1].secret)
    at_the_same_moment(monkeypatch)
    answers = await asyncio.gather(*(second_step(client, challenge, code) for _ in range(2)))
    assert sorted(answer.status_code for answer in answers) == [200, 401]
    [failed] = await events(client, ada[0], MY_EVENTS, type="login.failed")
    assert failed["details"] == {"reason": "already_used"}


async def test_a_challenge_works_once(
    client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock
) -> None:
    challenge = await challenge_for(client)
    assert (await second_step(client, challenge, totp_clock.code(ada[1].secret))).status_code == 200
    totp_clock.advance()
    again = await second_step(client, challenge, totp_clock.code(ada[1].secret))
    assert again.status_code == 401
    assert again.json() == {"detail": InvalidSecondStep.detail}
    recovery = await second_step(client, challenge, ada[1].recovery_codes[0])
    assert recovery.status_code == 401


async def test_a_challenge_dies_after_five_wrong_codes_even_with_the_right_one_after(
    app: FastAPI, client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock
) -> None:
    challenge = await challenge_for(client)
    wrong = totp_clock.code(ada[1].secret, offset=5)
    for _ in range(login_challenges.MAX_GUESSES):
        assert (await second_step(client, challenge, wrong)).status_code == 401
    # From another address (this one's login throttle is spent, see below).
    async with client_at(app, ATTACKER_ADDRESS) as elsewhere:
        right = await second_step(elsewhere, challenge, totp_clock.code(ada[1].secret))
        assert right.status_code == 401
        code = ada[1].recovery_codes[0]
        assert (await second_step(elsewhere, challenge, code)).status_code == 401
        # The code itself was not spent: a new challenge takes it.
        fresh = await challenge_for(elsewhere)
        assert (await second_step(elsewhere, fresh, totp_clock.code(ada[1].secret))).is_success
    reasons = [
        e["details"]["reason"]
        for e in await events(client, ada[0], MY_EVENTS)
        if e["type"] == "login.failed"
    ]
    assert sorted(reasons) == ["challenge_invalid"] * 2 + ["wrong_second_factor"] * 5


async def test_of_many_guesses_at_once_no_more_than_five_are_checked(
    app: FastAPI, client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock
) -> None:
    """Ten wrong codes at once, from ten addresses (no throttle key in common but
    the account's): the challenge counts each before checking it, so five are
    checked and five refused unchecked."""
    challenge = await challenge_for(client)
    wrong = totp_clock.code(ada[1].secret, offset=7)

    async def guess(index: int) -> int:
        async with client_at(app, f"198.51.100.{index + 1}") as http:
            return (await second_step(http, challenge, wrong)).status_code

    assert await asyncio.gather(*(guess(index) for index in range(10))) == [401] * 10
    async with app.state.engine.connect() as connection:
        guesses = await connection.scalar(text("SELECT guesses FROM login_challenges"))
    assert guesses == login_challenges.MAX_GUESSES
    failed = await events(client, ada[0], MY_EVENTS, type="login.failed")
    reasons = sorted(event["details"]["reason"] for event in failed)
    assert reasons == ["challenge_invalid"] * 5 + ["wrong_second_factor"] * 5


async def test_wrong_codes_count_toward_the_login_throttle(
    client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock, settings: Settings
) -> None:
    """Each wrong code is a failed login of the account from this client: past
    LOGIN_MAX_FAILURES, the second step and the password are both refused (429)."""
    wrong = totp_clock.code(ada[1].secret, offset=5)
    challenge = await challenge_for(client)
    for _ in range(settings.LOGIN_MAX_FAILURES):
        assert (await second_step(client, challenge, wrong)).status_code == 401
    fresh_code = totp_clock.code(ada[1].secret)
    throttled = await second_step(client, challenge, fresh_code)
    assert throttled.status_code == 429
    assert "Retry-After" in throttled.headers
    assert (await password_login(client)).status_code == 429


async def reset_password(client: httpx.AsyncClient, token: str) -> None:
    changed = await client.post(
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=bearer(token),
    )
    assert changed.status_code == 204, changed.text


async def end_every_session(client: httpx.AsyncClient, token: str) -> None:
    ended = await client.post("/api/auth/logout-all", headers=bearer(token))
    assert ended.status_code == 204, ended.text


@pytest.mark.parametrize("change", [reset_password, end_every_session])
async def test_a_password_change_or_logout_all_voids_an_outstanding_challenge(
    client: httpx.AsyncClient,
    ada: tuple[str, Any],
    totp_clock: TotpClock,
    change: Callable[[httpx.AsyncClient, str], Awaitable[None]],
) -> None:
    """The challenge was won with the old password (or before every session was
    ended): whoever holds it must start again."""
    challenge = await challenge_for(client)
    await change(client, ada[0])
    late = await second_step(client, challenge, totp_clock.code(ada[1].secret))
    assert late.status_code == 401, late.text


async def test_a_forged_or_expired_challenge_is_a_401(
    client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock, settings: Settings
) -> None:
    code = totp_clock.code(ada[1].secret)
    forged = await second_step(client, secrets.token_urlsafe(32), code)
    assert forged.status_code == 401
    assert forged.json() == {"detail": InvalidSecondStep.detail}
    assert forged.headers["WWW-Authenticate"] == "Bearer"
    async with (
        app_with(settings, TOTP_CHALLENGE_TTL=timedelta(milliseconds=20)) as brief,
        client_at(brief, CLIENT_ADDRESS) as http,
    ):
        challenge = await challenge_for(http)
        await asyncio.sleep(0.1)
        expired = await second_step(http, challenge, code)
    assert expired.status_code == 401
    # The code was not spent by either: a live challenge takes it.
    assert (await second_step(client, await challenge_for(client), code)).status_code == 200


async def test_the_secret_is_stored_encrypted_and_only_the_key_decrypts_it(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    secret = (await set_up(client, user_tokens["access_token"]))["secret"]
    async with app.state.engine.connect() as connection:
        row = (await connection.execute(text("SELECT * FROM totp_credentials"))).mappings().one()
    stored = repr(dict(row))
    assert secret not in stored
    assert secret.lower() not in stored.lower()
    assert base64.b32decode(secret).hex() not in stored
    assert Fernet(TEST_TOTP_KEY).decrypt(row["encrypted_secret"].encode()).decode() == secret
    with pytest.raises(InvalidToken):
        Fernet(NEW_KEY).decrypt(row["encrypted_secret"].encode())


async def test_an_api_key_cannot_set_up_confirm_disable_or_renew_the_second_factor(
    app: FastAPI, client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock
) -> None:
    """A key with every scope its owner holds (profile.write among them)."""
    token, enabled = ada
    scopes = ["profile.read", "profile.write", "items.read", "items.write"]
    key = (await create_key(client, token, scopes))["key"]
    before = await snapshot(app)
    for path in ("setup", "confirm", "disable", "recovery-codes"):
        body = {"code": totp_clock.code(enabled.secret)} if path != "setup" else None
        refused = await client.post(f"{TOTP_PATH}/{path}", json=body, headers=bearer(key))
        assert refused.status_code == 403, (path, refused.text)
    after = await snapshot(app)
    for table in SECOND_FACTOR_TABLES:
        assert after[table] == before[table], table
    # The same code still disables it from the session: the key spent nothing.
    done = await client.post(
        f"{TOTP_PATH}/disable",
        json={"code": totp_clock.code(enabled.secret)},
        headers=bearer(token),
    )
    assert done.status_code == 204


async def test_a_challenge_of_one_user_cannot_finish_anothers_login(
    app: FastAPI, client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock
) -> None:
    async with client_at(app, ATTACKER_ADDRESS) as mallory_client:
        mallory = await register(mallory_client, "mallory@example.com")
        mallorys = await enable(mallory_client, mallory["access_token"], totp_clock)
        adas_challenge = await challenge_for(client)
        # Mallory's own right code (and recovery code) with Ada's challenge: refused.
        for code in (totp_clock.code(mallorys.secret), mallorys.recovery_codes[0]):
            assert (await second_step(mallory_client, adas_challenge, code)).status_code == 401
        # Mallory's challenge with her code signs Mallory in, never Ada.
        mallorys_challenge = await challenge_for(mallory_client, "mallory@example.com")
        pair = (
            await second_step(mallory_client, mallorys_challenge, totp_clock.code(mallorys.secret))
        ).json()
        assert (await me(mallory_client, pair["access_token"])).json()["email"] == (
            "mallory@example.com"
        )
    # Ada's challenge is hers: her own code still finishes her login.
    adas = await second_step(client, adas_challenge, totp_clock.code(ada[1].secret))
    assert (await me(client, adas.json()["access_token"])).json()["email"] == "ada@example.com"


async def test_a_stolen_session_cannot_guess_the_code_to_turn_the_factor_off(
    client: httpx.AsyncClient, ada: tuple[str, Any], totp_clock: TotpClock, settings: Settings
) -> None:
    token, enabled = ada
    wrong = totp_clock.code(enabled.secret, offset=4)
    for _ in range(settings.LOGIN_MAX_FAILURES):
        refused = await client.post(
            f"{TOTP_PATH}/disable", json={"code": wrong}, headers=bearer(token)
        )
        assert refused.status_code == 400
    throttled = await client.post(
        f"{TOTP_PATH}/disable",
        json={"code": totp_clock.code(enabled.secret)},
        headers=bearer(token),
    )
    assert throttled.status_code == 429
    assert (await client.get(TOTP_PATH, headers=bearer(token))).json()["enabled"] is True


async def test_rotating_the_encryption_keys_keeps_every_second_factor_working(
    app: FastAPI,
    client: httpx.AsyncClient,
    ada: tuple[str, Any],
    totp_clock: TotpClock,
    settings: Settings,
) -> None:
    """The docs' rotation: a new key first with the old one second (secrets
    encrypted under the old one still verify), re-encrypt, then the new key alone
    verifies and the old one decrypts nothing."""
    both_keys = [SecretStr(NEW_KEY), SecretStr(TEST_TOTP_KEY)]
    rotated = settings.model_copy(update={"TOTP_ENCRYPTION_KEYS": both_keys})
    async with (
        app_with(settings, TOTP_ENCRYPTION_KEYS=both_keys) as both,
        client_at(both, CLIENT_ADDRESS) as http,
    ):
        signed_in = await second_step(
            http, await challenge_for(http), totp_clock.code(ada[1].secret)
        )
        assert signed_in.status_code == 200, signed_in.text
    assert await rotate(rotated) == 1
    async with app.state.engine.connect() as connection:
        sealed: str = await connection.scalar(text("SELECT encrypted_secret FROM totp_credentials"))
    assert Fernet(NEW_KEY).decrypt(sealed.encode()).decode() == ada[1].secret
    with pytest.raises(InvalidToken):
        Fernet(TEST_TOTP_KEY).decrypt(sealed.encode())
    totp_clock.advance()
    async with (
        app_with(settings, TOTP_ENCRYPTION_KEYS=[SecretStr(NEW_KEY)]) as after,
        client_at(after, CLIENT_ADDRESS) as http,
    ):
        signed_in = await second_step(
            http, await challenge_for(http), totp_clock.code(ada[1].secret)
        )
        assert signed_in.status_code == 200, signed_in.text
