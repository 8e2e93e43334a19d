"""Passkeys against recorded answers (tests/auth/webauthn_recorded.json): real
browsers' registration and assertions published with py_webauthn, and one
registration and assertion recorded from our soft authenticator. Each goes
through the app's own checks (app/auth/passkeys.py), and the ones that hold
through the whole app: a ceremony holding the recorded challenge, then the
route, as a browser would send it."""

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth import passkeys
from app.auth.one_time_tokens import digest
from app.config import Settings
from tests.auth.passkeys import PASSKEYS, TOKEN_PASSKEY, passkeys_of
from tests.auth.soft_authenticator import from_b64url
from tests.conftest import app_with, bearer, client_at, register

RECORDED = json.loads((Path(__file__).parent / "webauthn_recorded.json").read_text())
BROWSERS = RECORDED["py_webauthn_browsers"]
SOFT = RECORDED["soft_authenticator"]


def browsers_settings(settings: Settings) -> Settings:
    """The relying party the browsers recorded for: localhost, a page on :5000."""
    return settings.model_copy(
        update={"WEBAUTHN_RP_ID": BROWSERS["rp_id"], "WEBAUTHN_ORIGINS": [BROWSERS["origin"]]}
    )


def test_a_browsers_none_attestation_registers(settings: Settings) -> None:
    recorded = BROWSERS["registration_none_attestation"]
    verified = passkeys.verify_registration(
        settings=browsers_settings(settings),
        credential=recorded["credential"],
        challenge=from_b64url(recorded["challenge"]),
    )
    assert verified.credential_id == from_b64url(recorded["credential"]["rawId"])
    assert verified.public_key == from_b64url(recorded["public_key"])
    assert verified.sign_count == recorded["sign_count"]
    assert verified.transports == ["nfc", "usb"]


def test_a_browsers_registration_is_refused_for_another_site(settings: Settings) -> None:
    """The same recording, checked as this test suite's own site (stack.localhost)."""
    recorded = BROWSERS["registration_none_attestation"]
    with pytest.raises(passkeys.PasskeyCheckFailed) as refused:
        passkeys.verify_registration(
            settings=settings,
            credential=recorded["credential"],
            challenge=from_b64url(recorded["challenge"]),
        )
    assert refused.value.reason == "passkey_origin"


def test_a_browsers_user_verified_rs256_assertion_verifies(settings: Settings) -> None:
    recorded = BROWSERS["authentication_rs256_user_verified"]
    assertion = passkeys.verify_authentication(
        settings=browsers_settings(settings),
        credential=recorded["credential"],
        challenge=from_b64url(recorded["challenge"]),
        public_key=from_b64url(recorded["public_key"]),
        sign_count=recorded["stored_sign_count"],
    )
    assert assertion.sign_count == recorded["new_sign_count"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("authentication_es256_user_not_verified", "passkey_user_not_verified"),
        ("authentication_signed_by_another_key", "passkey_signature"),
    ],
)
def test_a_browsers_assertion_failing_a_check_is_refused(
    settings: Settings, name: str, reason: str
) -> None:
    recorded = BROWSERS[name]
    with pytest.raises(passkeys.PasskeyCheckFailed) as refused:
        passkeys.verify_authentication(
            settings=browsers_settings(settings),
            credential=recorded["credential"],
            challenge=from_b64url(recorded["challenge"]),
            public_key=from_b64url(recorded["public_key"]),
            sign_count=recorded["stored_sign_count"],
        )
    assert refused.value.reason == reason


def test_a_browsers_assertion_replayed_at_its_own_counter_is_refused(settings: Settings) -> None:
    recorded = BROWSERS["authentication_rs256_user_verified"]
    with pytest.raises(passkeys.PasskeyCheckFailed) as refused:
        passkeys.verify_authentication(
            settings=browsers_settings(settings),
            credential=recorded["credential"],
            challenge=from_b64url(recorded["challenge"]),
            public_key=from_b64url(recorded["public_key"]),
            sign_count=recorded["new_sign_count"],  # stored since it was first used
        )
    assert refused.value.reason == "passkey_sign_count"


# --- Through the whole app ------------------------------------------------------------


async def add_ceremony(
    app: FastAPI, *, purpose: str, challenge: str, user_id: int | None = None
) -> str:
    """A ceremony holding a recorded challenge, as the options would have left it."""
    ceremony = secrets.token_urlsafe(32)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO passkey_ceremonies (id, token_hash, purpose, user_id, challenge,"
                " expires_at) VALUES (gen_random_uuid(), :hash, :purpose, :user_id,"
                " :challenge, now() + interval '5 minutes')"
            ),
            {
                "hash": digest(ceremony),
                "purpose": purpose,
                "user_id": user_id,
                "challenge": from_b64url(challenge),
            },
        )
    return ceremony


async def add_stored_passkey(
    app: FastAPI,
    user_id: int,
    *,
    credential: dict[str, Any],
    public_key: str,
    sign_count: int,
    user_handle: str,
) -> None:
    """A passkey registered before, with the account's user handle (as the
    authenticator that recorded the assertion holds it)."""
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO webauthn_user_handles (user_id, handle) VALUES (:id, :handle)"),
            {"id": user_id, "handle": from_b64url(user_handle)},
        )
        await connection.execute(
            text(
                "INSERT INTO passkeys (id, user_id, credential_id, public_key, sign_count, name)"
                " VALUES (gen_random_uuid(), :id, :credential_id, :public_key, :sign_count, 'Key')"
            ),
            {
                "id": user_id,
                "credential_id": from_b64url(credential["rawId"]),
                "public_key": from_b64url(public_key),
                "sign_count": sign_count,
            },
        )


async def test_a_browsers_recordings_register_and_sign_in_through_the_app(
    app: FastAPI, settings: Settings
) -> None:
    async with (
        app_with(
            settings,
            WEBAUTHN_RP_ID=BROWSERS["rp_id"],
            WEBAUTHN_ORIGINS=[BROWSERS["origin"]],
        ) as localhost,
        client_at(localhost, "203.0.113.7") as http,
    ):
        ada = await register(http)
        token, user_id = ada["access_token"], ada["user"]["id"]
        registration = BROWSERS["registration_none_attestation"]
        ceremony = await add_ceremony(
            localhost, purpose="register", challenge=registration["challenge"], user_id=user_id
        )
        registered = await http.post(
            PASSKEYS,
            json={"ceremony": ceremony, "credential": registration["credential"], "name": "Key"},
            headers=bearer(token),
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["transports"] == ["nfc", "usb"]

        recorded = BROWSERS["authentication_rs256_user_verified"]
        await add_stored_passkey(
            localhost,
            user_id,
            credential=recorded["credential"],
            public_key=recorded["public_key"],
            sign_count=recorded["stored_sign_count"],
            user_handle=recorded["credential"]["response"]["userHandle"],
        )
        ceremony = await add_ceremony(localhost, purpose="login", challenge=recorded["challenge"])
        body = {"ceremony": ceremony, "credential": recorded["credential"]}
        signed_in = await http.post(TOKEN_PASSKEY, json=body)
        assert signed_in.status_code == 200, signed_in.text
        assert "access_token" in signed_in.json()
        assert len(await passkeys_of(http, token)) == 2

        # Recorded once, it never works again: the ceremony is spent, and a new
        # ceremony with the same challenge meets a counter that has moved on.
        assert (await http.post(TOKEN_PASSKEY, json=body)).status_code == 401
        again = await add_ceremony(localhost, purpose="login", challenge=recorded["challenge"])
        replayed = await http.post(
            TOKEN_PASSKEY, json={"ceremony": again, "credential": recorded["credential"]}
        )
        assert replayed.status_code == 401
        assert "counter" in replayed.json()["detail"]


async def test_the_soft_authenticators_recording_registers_and_signs_in(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ada = await register(client)
    token, user_id = ada["access_token"], ada["user"]["id"]
    # The handle the recording's authenticator was given at registration.
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO webauthn_user_handles (user_id, handle) VALUES (:id, :handle)"),
            {"id": user_id, "handle": from_b64url(SOFT["user_handle"])},
        )
    ceremony = await add_ceremony(
        app, purpose="register", challenge=SOFT["registration"]["challenge"], user_id=user_id
    )
    registered = await client.post(
        PASSKEYS,
        json={"ceremony": ceremony, "credential": SOFT["registration"]["credential"]},
        headers=bearer(token),
    )
    assert registered.status_code == 201, registered.text
    ceremony = await add_ceremony(
        app, purpose="login", challenge=SOFT["authentication"]["challenge"]
    )
    signed_in = await client.post(
        TOKEN_PASSKEY,
        json={"ceremony": ceremony, "credential": SOFT["authentication"]["credential"]},
    )
    assert signed_in.status_code == 200, signed_in.text
    async with app.state.engine.connect() as connection:
        stored = await connection.scalar(text("SELECT sign_count FROM passkeys"))
    assert stored == SOFT["authentication"]["sign_count"]
