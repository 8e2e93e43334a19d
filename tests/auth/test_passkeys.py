"""Passkeys end to end against the app and its Postgres: a software authenticator
(tests/auth/soft_authenticator.py) registers, and signs in with bearer tokens
and with a cookie session; the list, rename and removal; the last way in; the
options' shape; what a claim, "this wasn't me", deactivation and deletion do to
passkeys. py_webauthn's checks are never mocked."""

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.auth import passwords
from app.config import Settings
from app.schema.audit import EventType
from tests.audit.helpers import events
from tests.auth.cookie_sessions import ACCESS, CSRF, set_cookies
from tests.auth.passkeys import (
    COOKIE_PASSKEY,
    PASSKEYS,
    REGISTER_OPTIONS,
    add_passkey,
    finish_registration,
    login_options,
    passkeys_of,
    registration_options,
    sign_in,
)
from tests.auth.second_factor import TotpClock, enable, password_login
from tests.auth.soft_authenticator import SoftAuthenticator, from_b64url
from tests.conftest import bearer, me, register

ADA = "ada@example.com"


async def scalar(app: FastAPI, sql: str, **values: Any) -> Any:
    async with app.state.engine.connect() as connection:
        return await connection.scalar(text(sql), values)


async def execute(app: FastAPI, sql: str, **values: Any) -> None:
    async with app.state.engine.begin() as connection:
        await connection.execute(text(sql), values)


async def test_registration_options_follow_the_contract(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, user_tokens: dict[str, Any]
) -> None:
    """rp from the settings, a random user handle (never the id or the address),
    a discoverable credential with user verification, ES256, EdDSA and RS256,
    the caller's passkeys excluded."""
    token = user_tokens["access_token"]
    options = await registration_options(client, token)
    assert set(options) == {"ceremony", "publicKey"}
    public_key = options["publicKey"]
    assert public_key["rp"] == {"id": settings.webauthn_rp_id, "name": settings.PROJECT_NAME}
    handle = from_b64url(public_key["user"]["id"])
    user_id = user_tokens["user"]["id"]
    assert handle == await scalar(
        app, "SELECT handle FROM webauthn_user_handles WHERE user_id = :id", id=user_id
    )
    assert len(handle) == 32
    assert str(user_id).encode() not in handle
    assert ADA.encode() not in handle
    assert public_key["user"]["name"] == ADA
    assert public_key["authenticatorSelection"]["residentKey"] == "required"
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert [param["alg"] for param in public_key["pubKeyCredParams"]] == [-7, -8, -257]
    assert public_key["excludeCredentials"] == []
    assert public_key["attestation"] == "none"
    assert len(from_b64url(public_key["challenge"])) == 32

    authenticator = SoftAuthenticator()
    await add_passkey(client, token, authenticator)
    again = (await registration_options(client, token))["publicKey"]
    assert from_b64url(again["user"]["id"]) == handle  # the same handle, kept
    [excluded] = again["excludeCredentials"]
    assert from_b64url(excluded["id"]) == authenticator.credentials[0].id
    assert excluded["transports"] == ["hybrid", "internal"]


async def test_login_options_name_no_account_and_require_user_verification(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    options = await login_options(client)
    public_key = options["publicKey"]
    assert public_key["rpId"] == settings.webauthn_rp_id
    assert public_key["allowCredentials"] == []
    assert public_key["userVerification"] == "required"
    assert public_key["timeout"] == settings.PASSKEY_CEREMONY_TTL.total_seconds() * 1000


async def test_register_list_rename_sign_in_and_remove(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    phone, laptop = SoftAuthenticator(), SoftAuthenticator(algorithm="EdDSA", backed_up=False)
    first = await add_passkey(client, token, phone, name="Phone")
    second = await add_passkey(client, token, laptop)
    assert first["name"] == "Phone"
    assert second["name"] == "Passkey"
    assert first["backed_up"] is True
    assert second["backed_up"] is False
    assert first["transports"] == ["hybrid", "internal"]
    assert first["last_used_at"] is None
    assert [p["id"] for p in await passkeys_of(client, token)] == [first["id"], second["id"]]

    renamed = await client.patch(
        f"{PASSKEYS}/{second['id']}", json={"name": "  Laptop  "}, headers=bearer(token)
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Laptop"

    signed_in = await sign_in(client, laptop)
    assert signed_in.status_code == 200, signed_in.text
    pair = signed_in.json()
    assert set(pair) >= {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (await me(client, pair["access_token"])).json()["email"] == ADA
    used = {p["id"]: p for p in await passkeys_of(client, token)}
    assert used[second["id"]]["last_used_at"] is not None
    assert used[first["id"]]["last_used_at"] is None

    removed = await client.delete(f"{PASSKEYS}/{second['id']}", headers=bearer(token))
    assert removed.status_code == 204
    assert [p["id"] for p in await passkeys_of(client, token)] == [first["id"]]
    gone = await sign_in(client, laptop)
    assert gone.status_code == 401
    assert "no account has this passkey" in gone.json()["detail"]

    trail = await events(client, token, "/api/users/me/events")
    types = [event["type"] for event in trail]
    assert types.count(EventType.PASSKEY_REGISTERED) == 2
    assert EventType.PASSKEY_RENAMED in types
    assert EventType.PASSKEY_REMOVED in types
    [succeeded] = [e for e in trail if e["type"] == EventType.LOGIN_SUCCEEDED]
    assert succeeded["details"]["method"] == "passkey"
    # The removed passkey's sign-in names no account: not in the account's trail.
    assert EventType.LOGIN_FAILED not in types


async def test_every_algorithm_signs_in(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    for algorithm in ("ES256", "EdDSA", "RS256"):
        authenticator = SoftAuthenticator(algorithm=algorithm)
        await add_passkey(client, user_tokens["access_token"], authenticator, name=algorithm)
        response = await sign_in(client, authenticator)
        assert response.status_code == 200, (algorithm, response.text)


async def test_a_counterless_authenticator_signs_in_again_and_again(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """Synced passkeys report 0 every time: 0 after 0 is no clone."""
    authenticator = SoftAuthenticator(counter_step=0)
    await add_passkey(client, user_tokens["access_token"], authenticator)
    for _ in range(3):
        assert (await sign_in(client, authenticator)).status_code == 200


async def test_the_cookie_sign_in_sets_the_cookie_session(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    authenticator = SoftAuthenticator()
    await add_passkey(client, user_tokens["access_token"], authenticator)
    response = await sign_in(client, authenticator, COOKIE_PASSKEY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == ADA
    cookies = set_cookies(response)
    assert cookies[ACCESS]["httponly"]
    assert cookies[ACCESS]["samesite"] == "strict"
    assert cookies[CSRF]["value"] == body["csrf_token"]
    client.cookies.clear()
    browser_headers = {"Cookie": f"{ACCESS}={cookies[ACCESS]['value']}"}
    assert (await client.get("/api/users/me", headers=browser_headers)).status_code == 200


async def test_a_cookie_session_registers_with_its_csrf_token_only(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    from tests.auth.cookie_sessions import cookie_login

    browser = await cookie_login(client)
    refused = await client.post(REGISTER_OPTIONS, headers=browser.headers(csrf_header=None))
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    options = await client.post(REGISTER_OPTIONS, headers=browser.headers())
    assert options.status_code == 200, options.text
    body = options.json()
    credential = SoftAuthenticator().create(body["publicKey"])
    registered = await client.post(
        PASSKEYS,
        json={"ceremony": body["ceremony"], "credential": credential},
        headers=browser.headers(),
    )
    assert registered.status_code == 201, registered.text


async def test_a_passkey_is_enough_with_a_second_factor_on(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], totp_clock: TotpClock
) -> None:
    """A password asks for the code (202); a passkey signs in directly (200)."""
    token = user_tokens["access_token"]
    authenticator = SoftAuthenticator()
    await add_passkey(client, token, authenticator)
    await enable(client, token, totp_clock)
    assert (await password_login(client)).status_code == 202
    bearer_sign_in = await sign_in(client, authenticator)
    assert bearer_sign_in.status_code == 200, bearer_sign_in.text
    assert "access_token" in bearer_sign_in.json()
    cookie_sign_in = await sign_in(client, authenticator, COOKIE_PASSKEY)
    assert cookie_sign_in.status_code == 200, cookie_sign_in.text
    assert ACCESS in set_cookies(cookie_sign_in)


async def test_a_new_device_is_noticed_and_gets_a_device_cookie(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """The sign-in's shared parts: the device cookie, the new-device notice."""
    authenticator = SoftAuthenticator()
    await add_passkey(client, user_tokens["access_token"], authenticator)
    client.cookies.clear()
    response = await _sign_in_from(client, authenticator, "Other browser/1.0")
    assert response.status_code == 200, response.text
    assert "login_device" in set_cookies(response)
    trail = await events(client, user_tokens["access_token"], "/api/users/me/events")
    [succeeded] = [e for e in trail if e["type"] == EventType.LOGIN_SUCCEEDED]
    assert succeeded["details"]["new_device"] is True
    assert await scalar(app, "SELECT count(*) FROM mail_outbox WHERE recipient = :r", r=ADA) >= 1


async def _sign_in_from(
    client: httpx.AsyncClient, authenticator: SoftAuthenticator, user_agent: str
) -> httpx.Response:
    options = await login_options(client)
    credential = authenticator.get(options["publicKey"])
    return await client.post(
        "/api/token/passkey",
        json={"ceremony": options["ceremony"], "credential": credential},
        headers={"User-Agent": user_agent},
    )


async def make_passwordless(app: FastAPI, user_id: int) -> None:
    await execute(
        app,
        "UPDATE users SET hashed_password = :none WHERE id = :id",
        none=passwords.NO_PASSWORD,
        id=user_id,
    )


async def test_the_last_way_in_cannot_be_removed(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """No password, no OpenID link: the last passkey stays (409); with another
    passkey, or with a link, one may go."""
    token, user_id = user_tokens["access_token"], user_tokens["user"]["id"]
    first = await add_passkey(client, token, SoftAuthenticator())
    second = await add_passkey(client, token, SoftAuthenticator())
    await make_passwordless(app, user_id)

    assert (
        await client.delete(f"{PASSKEYS}/{first['id']}", headers=bearer(token))
    ).status_code == 204
    last = await client.delete(f"{PASSKEYS}/{second['id']}", headers=bearer(token))
    assert last.status_code == 409
    assert "last way to sign in" in last.json()["detail"]
    assert [p["id"] for p in await passkeys_of(client, token)] == [second["id"]]

    await execute(
        app,
        "INSERT INTO oidc_identities (user_id, provider, subject, email)"
        " VALUES (:id, 'company', 'sub-1', :email)",
        id=user_id,
        email=ADA,
    )
    assert (
        await client.delete(f"{PASSKEYS}/{second['id']}", headers=bearer(token))
    ).status_code == 204


async def test_an_account_with_only_a_passkey_signs_in_and_may_unlink_its_provider(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """An OpenID account (no password) adds a passkey: its link may go now (the
    passkey is a way in), and the passkey then signs in alone."""
    token, user_id = user_tokens["access_token"], user_tokens["user"]["id"]
    await make_passwordless(app, user_id)
    await execute(
        app,
        "INSERT INTO oidc_identities (user_id, provider, subject, email)"
        " VALUES (:id, 'company', 'sub-1', :email)",
        id=user_id,
        email=ADA,
    )
    assert (
        await client.delete("/api/auth/oidc/links/company", headers=bearer(token))
    ).status_code == 409
    authenticator = SoftAuthenticator()
    await add_passkey(client, token, authenticator)
    assert (
        await client.delete("/api/auth/oidc/links/company", headers=bearer(token))
    ).status_code == 204
    assert (await sign_in(client, authenticator)).status_code == 200


async def test_a_deactivated_account_cannot_sign_in_with_its_passkey(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    admin_tokens: dict[str, Any],
) -> None:
    authenticator = SoftAuthenticator()
    await add_passkey(client, user_tokens["access_token"], authenticator)
    user_id = user_tokens["user"]["id"]
    deactivated = await client.patch(
        f"/api/users/{user_id}",
        json={"is_active": False},
        headers=bearer(admin_tokens["access_token"]),
    )
    assert deactivated.status_code == 200, deactivated.text
    refused = await sign_in(client, authenticator)
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("The passkey sign-in was refused")
    reasons = await scalar(
        app,
        "SELECT details->>'reason' FROM audit_events WHERE type = 'login.failed'"
        " AND target_id = :id",
        id=user_id,
    )
    assert reasons == "account_inactive"


async def test_deleting_the_account_deletes_its_passkeys(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    authenticator = SoftAuthenticator()
    await add_passkey(client, token, authenticator)
    await registration_options(client, token)  # a registration under way too
    deleted = await client.delete("/api/users/me", headers=bearer(token))
    assert deleted.status_code == 204, deleted.text
    for table in ("passkeys", "webauthn_user_handles", "passkey_ceremonies"):
        assert await scalar(app, f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    assert (await sign_in(client, authenticator)).status_code == 401


async def test_a_registration_left_unfinished_registers_nothing(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    await registration_options(client, token)
    assert await passkeys_of(client, token) == []
    options = await registration_options(client, token)
    credential = SoftAuthenticator().create(options["publicKey"])
    assert (
        await finish_registration(client, token, options["ceremony"], credential)
    ).status_code == 201


async def test_registering_needs_a_signed_in_session(client: httpx.AsyncClient) -> None:
    assert (await client.post(REGISTER_OPTIONS)).status_code == 401
    assert (await client.get(PASSKEYS)).status_code == 401


async def test_a_second_account_never_sees_the_firsts_passkeys(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    await add_passkey(client, user_tokens["access_token"], SoftAuthenticator())
    other = await register(client, "bob@example.com")
    assert await passkeys_of(client, other["access_token"]) == []
