"""TOTP second factor: RFC 6238's codes, setup (secret, otpauth URI, QR code),
confirmation, the login's second step for bearer and cookie clients, recovery
codes (ten, single use, shown once, stored hashed), disabling and renewing them
with a code, the status, and the audit trail."""

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth import recovery_codes, totp
from app.config import Settings
from tests.audit.helpers import MY_EVENTS, events
from tests.auth.cookie_sessions import ACCESS, CSRF, SESSION_PATH, set_cookies
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
from tests.conftest import PASSWORD, bearer, count_rows, me

# RFC 6238 Appendix B: the SHA-1 key is the ASCII of "12345678901234567890", codes
# have 8 digits, steps 30 s from the Unix epoch.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "code"), RFC_SHA1_VECTORS)
def test_the_rfc_6238_test_vectors_are_accepted_by_the_apps_check(
    unix_time: int, code: str
) -> None:
    """The function the app verifies with, at 8 digits: each vector's code is
    accepted at its time (its step returned), and is the code made for that step."""
    at = datetime.fromtimestamp(unix_time, UTC)
    step = unix_time // 30
    assert totp.step_at(at) == step
    assert totp.accepted_step(RFC_SECRET, code, at=at, after_step=0, digits=8) == step
    assert totp.code_at(RFC_SECRET, step, digits=8) == code
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    assert totp.accepted_step(RFC_SECRET, wrong, at=at, after_step=0, digits=8) is None


def test_a_code_is_accepted_one_step_either_side_and_only_after_the_last_used() -> None:
    secret = totp.new_secret()
    at = datetime.fromtimestamp(1_700_000_015, UTC)
    now = totp.step_at(at)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, now + offset)
        assert totp.accepted_step(secret, code, at=at, after_step=0) == now + offset
    for offset in (-2, 2):
        assert (
            totp.accepted_step(secret, totp.code_at(secret, now + offset), at=at, after_step=0)
            is None
        )
    code = totp.code_at(secret, now)
    assert totp.accepted_step(secret, code, at=at, after_step=now) is None  # used already
    assert totp.accepted_step(secret, code, at=at, after_step=now - 1) == now
    assert totp.accepted_step(secret, " " + code[:3] + " " + code[3:], at=at, after_step=0) == now
    assert totp.accepted_step(secret, "12345", at=at, after_step=0) is None


async def status(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get(TOTP_PATH, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_setup_shows_the_secret_its_otpauth_uri_and_a_qr_code(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], settings: Settings
) -> None:
    setup = await set_up(client, user_tokens["access_token"])
    assert set(setup) == {"secret", "otpauth_uri", "qr_svg"}
    secret = setup["secret"]
    assert len(base64.b32decode(secret)) == 20  # 160 bits
    uri = urlsplit(setup["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/{settings.PROJECT_NAME}:ada@example.com"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == [settings.PROJECT_NAME]
    svg = setup["qr_svg"]
    assert svg.startswith("<?xml")
    assert "<svg" in svg
    assert svg.rstrip().endswith("</svg>")
    # Pending until confirmed: the password alone still signs in.
    assert await status(client, user_tokens["access_token"]) == {
        "enabled": False,
        "recovery_codes_left": 0,
    }
    assert (await password_login(client)).status_code == 200


async def test_a_wrong_confirmation_code_enables_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    secret = (await set_up(client, token))["secret"]
    wrong = f"{(int(totp_clock.code(secret)) + 1) % 10**6:06d}"
    for code in (wrong, totp_clock.code(secret, offset=3), "not a code"):
        response = await client.post(
            f"{TOTP_PATH}/confirm", json={"code": code}, headers=bearer(token)
        )
        assert response.status_code == 400, response.text
    assert (await status(client, token))["enabled"] is False
    assert (await password_login(client)).status_code == 200


async def test_setting_up_again_replaces_a_pending_secret_and_is_409_once_enabled(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    first = (await set_up(client, token))["secret"]
    second = (await set_up(client, token))["secret"]
    assert first != second
    stale = await client.post(
        f"{TOTP_PATH}/confirm", json={"code": totp_clock.code(first)}, headers=bearer(token)
    )
    assert stale.status_code == 400  # the replaced secret confirms nothing
    confirmed = await client.post(
        f"{TOTP_PATH}/confirm", json={"code": totp_clock.code(second)}, headers=bearer(token)
    )
    assert confirmed.status_code == 200
    again = await client.post(f"{TOTP_PATH}/setup", headers=bearer(token))
    assert again.status_code == 409


async def test_with_a_second_factor_a_password_login_gets_a_challenge_then_a_session(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    totp_clock: TotpClock,
    settings: Settings,
) -> None:
    user_id = user_tokens["user"]["id"]
    enabled = await enable(client, user_tokens["access_token"], totp_clock)
    sessions = await count_rows(app, "auth_sessions", user_id)
    first = await password_login(client)
    assert first.status_code == 202, first.text
    body = first.json()
    assert set(body) == {"second_factor_required", "challenge", "methods", "expires_in"}
    assert body["second_factor_required"] is True
    assert body["methods"] == ["totp", "recovery_code"]
    assert body["expires_in"] == int(settings.TOTP_CHALLENGE_TTL.total_seconds())
    assert first.headers["Cache-Control"] == "no-store"
    assert "set-cookie" not in first.headers  # no device cookie, no session yet
    assert await count_rows(app, "auth_sessions", user_id) == sessions
    second = await second_step(client, body["challenge"], totp_clock.code(enabled.secret))
    assert second.status_code == 200, second.text
    pair = second.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (await me(client, pair["access_token"])).status_code == 200
    assert await count_rows(app, "auth_sessions", user_id) == sessions + 1
    [succeeded, *_] = await events(client, pair["access_token"], MY_EVENTS, type="login.succeeded")
    assert succeeded["details"]["method"] == "totp"
    # The JSON login answers the same.
    json_login = await client.post(
        "/api/token/", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert json_login.status_code == 202


async def test_a_cookie_login_with_a_second_factor_sets_its_cookies_after_the_second_step(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    enabled = await enable(client, user_tokens["access_token"], totp_clock)
    client.cookies.clear()
    first = await client.post(
        f"{SESSION_PATH}/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert first.status_code == 202, first.text
    assert set_cookies(first) == {}
    assert first.json()["methods"] == ["totp", "recovery_code"]
    second = await client.post(
        f"{SESSION_PATH}/second-factor",
        json={"challenge": first.json()["challenge"], "code": totp_clock.code(enabled.secret)},
    )
    assert second.status_code == 200, second.text
    cookies = set_cookies(second)
    assert {ACCESS, CSRF} <= set(cookies)
    assert set(second.json()) == {"user", "csrf_token", "expires_in"}
    client.cookies.clear()
    seen = await client.get(
        "/api/users/me", headers={"Cookie": f"{ACCESS}={cookies[ACCESS]['value']}"}
    )
    assert seen.status_code == 200
    assert seen.json()["email"] == "ada@example.com"


async def test_ten_recovery_codes_are_shown_once_stored_hashed_and_each_works_once(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    enabled = await enable(client, token, totp_clock)
    codes = enabled.recovery_codes
    assert len(codes) == len(set(codes)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)
    async with app.state.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM recovery_codes"))).mappings().all()
    assert sorted(row["code_hash"] for row in rows) == sorted(
        hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes
    )
    assert not any(code in repr([dict(row) for row in rows]) for code in codes)
    # Shown once: the status tells how many are left, never which.
    shown = await client.get(TOTP_PATH, headers=bearer(token))
    assert shown.json() == {"enabled": True, "recovery_codes_left": 10}
    assert not any(code in shown.text for code in codes)
    # Typed loosely (upper case, spaces), it signs in once.
    loosely = codes[0].upper().replace("-", " ")
    signed_in = await second_step(client, await challenge_for(client), loosely)
    assert signed_in.status_code == 200, signed_in.text
    pair = signed_in.json()
    [succeeded, *_] = await events(client, pair["access_token"], MY_EVENTS, type="login.succeeded")
    assert succeeded["details"]["method"] == "recovery_code"
    again = await second_step(client, await challenge_for(client), codes[0])
    assert again.status_code == 401
    assert (await status(client, token))["recovery_codes_left"] == 9


async def test_disabling_needs_a_code_and_then_the_password_alone_signs_in(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    enabled = await enable(client, token, totp_clock)
    wrong = await client.post(
        f"{TOTP_PATH}/disable", json={"code": "000000"}, headers=bearer(token)
    )
    if totp_clock.code(enabled.secret) == "000000":  # one chance in a million
        pytest.skip("the wrong code happened to be right")
    assert wrong.status_code == 400
    assert (await password_login(client)).status_code == 202
    done = await client.post(
        f"{TOTP_PATH}/disable",
        json={"code": totp_clock.code(enabled.secret)},
        headers=bearer(token),
    )
    assert done.status_code == 204, done.text
    assert await status(client, token) == {"enabled": False, "recovery_codes_left": 0}
    assert (await password_login(client)).status_code == 200
    async with app.state.engine.connect() as connection:
        for count in (
            "SELECT count(*) FROM totp_credentials",
            "SELECT count(*) FROM recovery_codes",
            "SELECT count(*) FROM login_challenges",
        ):
            assert await connection.scalar(text(count)) == 0, count
    [disabled] = await events(client, token, MY_EVENTS, type="mfa.disabled")
    assert disabled["details"] == {"method": "totp"}
    again = await client.post(
        f"{TOTP_PATH}/disable",
        json={"code": totp_clock.code(enabled.secret)},
        headers=bearer(token),
    )
    assert again.status_code == 409


async def test_a_lost_phone_disables_the_second_factor_with_a_recovery_code(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    enabled = await enable(client, user_tokens["access_token"], totp_clock)
    # Sign in with a recovery code, then turn the factor off with another.
    pair = (
        await second_step(client, await challenge_for(client), enabled.recovery_codes[0])
    ).json()
    token = pair["access_token"]
    done = await client.post(
        f"{TOTP_PATH}/disable", json={"code": enabled.recovery_codes[1]}, headers=bearer(token)
    )
    assert done.status_code == 204, done.text
    [disabled] = await events(client, token, MY_EVENTS, type="mfa.disabled")
    assert disabled["details"] == {"method": "recovery_code"}


async def test_new_recovery_codes_need_a_code_and_void_the_old_ones(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    enabled = await enable(client, token, totp_clock)
    path = f"{TOTP_PATH}/recovery-codes"
    refused = await client.post(path, json={"code": "aaaa-bbbb-cccc-dddd"}, headers=bearer(token))
    assert refused.status_code == 400
    renewed = await client.post(
        path, json={"code": totp_clock.code(enabled.secret)}, headers=bearer(token)
    )
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()["recovery_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(enabled.recovery_codes)
    assert (
        await second_step(client, await challenge_for(client), enabled.recovery_codes[0])
    ).status_code == 401
    assert (await second_step(client, await challenge_for(client), fresh[0])).status_code == 200
    [renewal] = await events(client, token, MY_EVENTS, type="mfa.recovery_codes_regenerated")
    assert renewal["details"] == {"method": "totp"}


async def test_the_status_is_readable_with_a_key_holding_profile_read(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    key = (await create_key(client, token, ["profile.read"]))["key"]
    assert await status(client, key) == {"enabled": False, "recovery_codes_left": 0}
    await enable(client, token, totp_clock)
    assert await status(client, key) == {"enabled": True, "recovery_codes_left": 10}
    assert (await client.get(TOTP_PATH)).status_code == 401


async def test_the_trail_records_the_second_factor_and_never_a_secret_or_code(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    token = user_tokens["access_token"]
    enabled = await enable(client, token, totp_clock)
    challenge = await challenge_for(client)
    wrong = totp_clock.code(enabled.secret, offset=-3)
    assert (await second_step(client, challenge, wrong)).status_code == 401
    right = totp_clock.code(enabled.secret)
    assert (await second_step(client, challenge, right)).status_code == 200
    assert len(await events(client, token, MY_EVENTS, type="mfa.enabled")) == 1
    [failed] = await events(client, token, MY_EVENTS, type="login.failed")
    assert failed["details"] == {"reason": "wrong_second_factor"}
    trail = repr(await events(client, token, MY_EVENTS))
    for secret in (enabled.secret, challenge, wrong, right, *enabled.recovery_codes):
        assert secret not in trail
    assert recovery_codes.digest(enabled.recovery_codes[0]) not in trail
