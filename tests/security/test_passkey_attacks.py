"""Attacks on passkeys: what a malicious page, a phishing site, a cloned or
broken authenticator, a replaying or racing client, or another account's
session sends, answered with a clear 4xx saying why (never a 500), nothing
registered or signed in, and every refused sign-in in the audit trail with its
reason. The authenticator is tests/auth/soft_authenticator.py, bent as each
attack needs; py_webauthn's checks are never mocked."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth import oidc
from app.config import Settings
from app.services import oidc_accounts
from tests.auth.passkeys import (
    LOGIN_OPTIONS,
    PASSKEYS,
    REGISTER_OPTIONS,
    TOKEN_PASSKEY,
    add_passkey,
    finish_registration,
    login_options,
    passkeys_of,
    registration_options,
    sign_in,
)
from tests.auth.soft_authenticator import BE, BS, UP, SoftAuthenticator, b64url, new_key
from tests.conftest import PASSWORD, bearer, login, register
from tests.mail.helpers import mail_app
from tests.mail.smtp_server import SmtpServer, link_of

ADA = "ada@example.com"
PHISHING = "https://stack.localhost.evil.example"


async def last_refusal(app: FastAPI) -> str:
    async with app.state.engine.connect() as connection:
        reason: str = await connection.scalar(
            text(
                "SELECT details->>'reason' FROM audit_events WHERE type = 'login.failed'"
                " ORDER BY id DESC LIMIT 1"
            )
        )
    return reason


async def count(app: FastAPI, table: str) -> int:
    async with app.state.engine.connect() as connection:
        found: int = await connection.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    return found


def assert_refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, detail


@pytest.fixture
async def ada(client: httpx.AsyncClient, user_tokens: dict[str, Any]) -> SoftAuthenticator:
    """Ada's authenticator, holding one passkey of her account."""
    authenticator = SoftAuthenticator()
    await add_passkey(client, user_tokens["access_token"], authenticator)
    return authenticator


# --- A page of another site (phishing), another relying party ------------------------


async def test_an_assertion_made_for_another_origin_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    refused = await sign_in(client, ada, origin=PHISHING)
    assert_refused(refused, 401, "origin")
    assert await last_refusal(app) == "passkey_origin"


async def test_a_registration_made_on_another_origin_is_refused(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    options = await registration_options(client, token)
    credential = SoftAuthenticator().create(options["publicKey"], origin=PHISHING)
    refused = await finish_registration(client, token, options["ceremony"], credential)
    assert_refused(refused, 400, "origin", "not registered")
    assert await count(app, "passkeys") == 0


async def test_an_assertion_for_another_relying_party_id_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """The authenticator data's rpIdHash names another site."""
    credential = ada.credentials[0]
    refused = await sign_in(client, ada, credential=credential, rp_id="evil.example")
    assert_refused(refused, 401, "relying party id")
    assert await last_refusal(app) == "passkey_rp_id"


async def test_a_registration_for_another_relying_party_id_is_refused(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    options = await registration_options(client, token)
    credential = SoftAuthenticator().create(options["publicKey"], rp_id="evil.example")
    refused = await finish_registration(client, token, options["ceremony"], credential)
    assert_refused(refused, 400, "relying party id")


# --- Challenges and ceremonies -------------------------------------------------------


async def test_an_answer_to_another_challenge_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """An assertion made for one ceremony, presented with another's id."""
    first, second = await login_options(client), await login_options(client)
    credential = ada.get(first["publicKey"])
    refused = await client.post(
        TOKEN_PASSKEY, json={"ceremony": second["ceremony"], "credential": credential}
    )
    assert_refused(refused, 401, "another challenge")
    assert await last_refusal(app) == "passkey_challenge"


async def test_a_registration_ceremony_cannot_finish_a_sign_in(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any], ada: SoftAuthenticator
) -> None:
    options = await registration_options(client, user_tokens["access_token"])
    credential = ada.get({"challenge": options["publicKey"]["challenge"]})
    refused = await client.post(
        TOKEN_PASSKEY, json={"ceremony": options["ceremony"], "credential": credential}
    )
    assert_refused(refused, 401, "ceremony")
    assert await last_refusal(app) == "passkey_ceremony_invalid"


async def test_a_sign_in_ceremony_cannot_finish_a_registration(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    options = await login_options(client)
    credential = SoftAuthenticator().create(
        {
            "challenge": options["publicKey"]["challenge"],
            "rp": {"id": "stack.localhost"},
            "user": {"id": b64url(b"someone")},
        }
    )
    refused = await finish_registration(client, token, options["ceremony"], credential)
    assert_refused(refused, 400, "ceremony")
    assert await passkeys_of(client, token) == []


async def test_one_users_registration_ceremony_cannot_finish_anothers(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """Bob finishes Ada's ceremony with his own session: refused, and Ada's
    ceremony is untouched (she finishes it after)."""
    bob = await register(client, "bob@example.com")
    options = await registration_options(client, user_tokens["access_token"])
    bobs_credential = SoftAuthenticator().create(options["publicKey"])
    refused = await finish_registration(
        client, bob["access_token"], options["ceremony"], bobs_credential
    )
    assert_refused(refused, 400, "not this account's")
    assert await passkeys_of(client, bob["access_token"]) == []
    credential = SoftAuthenticator().create(options["publicKey"])
    finished = await finish_registration(
        client, user_tokens["access_token"], options["ceremony"], credential
    )
    assert finished.status_code == 201, finished.text


async def test_an_answer_of_the_other_ceremony_type_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """clientData says webauthn.create where a sign-in expects webauthn.get."""
    refused = await sign_in(client, ada, kind="webauthn.create")
    assert_refused(refused, 401, "other kind of ceremony")
    assert await last_refusal(app) == "passkey_wrong_ceremony"


async def test_a_ceremony_works_once(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """The very same answer sent again (a replay): its ceremony is gone."""
    options = await login_options(client)
    body = {"ceremony": options["ceremony"], "credential": ada.get(options["publicKey"])}
    assert (await client.post(TOKEN_PASSKEY, json=body)).status_code == 200
    replayed = await client.post(TOKEN_PASSKEY, json=body)
    assert_refused(replayed, 401, "already used")
    assert await last_refusal(app) == "passkey_ceremony_invalid"


async def test_a_failed_answer_spends_its_ceremony_too(
    client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    options = await login_options(client)
    wrong = ada.get(options["publicKey"], origin=PHISHING)
    assert (
        await client.post(
            TOKEN_PASSKEY, json={"ceremony": options["ceremony"], "credential": wrong}
        )
    ).status_code == 401
    right = ada.get(options["publicKey"])
    again = await client.post(
        TOKEN_PASSKEY, json={"ceremony": options["ceremony"], "credential": right}
    )
    assert_refused(again, 401, "ceremony")


async def test_of_two_answers_to_one_ceremony_at_once_one_signs_in(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    options = await login_options(client)
    body = {"ceremony": options["ceremony"], "credential": ada.get(options["publicKey"])}
    answers = await asyncio.gather(*(client.post(TOKEN_PASSKEY, json=body) for _ in range(2)))
    assert sorted(answer.status_code for answer in answers) == [200, 401]
    assert await count(app, "auth_sessions") == 2  # registration's and this one


async def test_of_two_registrations_with_one_ceremony_at_once_one_registers(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    options = await registration_options(client, token)
    bodies = [
        {
            "ceremony": options["ceremony"],
            "credential": SoftAuthenticator().create(options["publicKey"]),
        }
        for _ in range(2)
    ]
    answers = await asyncio.gather(
        *(client.post(PASSKEYS, json=body, headers=bearer(token)) for body in bodies)
    )
    assert sorted(answer.status_code for answer in answers) == [201, 400]
    assert await count(app, "passkeys") == 1


async def test_an_expired_ceremony_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    sign_in_options = await login_options(client)
    registration = await registration_options(client, token)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text("UPDATE passkey_ceremonies SET expires_at = now() - interval '1 second'")
        )
    late = await client.post(
        TOKEN_PASSKEY,
        json={
            "ceremony": sign_in_options["ceremony"],
            "credential": ada.get(sign_in_options["publicKey"]),
        },
    )
    assert_refused(late, 401, "expired")
    assert await last_refusal(app) == "passkey_ceremony_invalid"
    credential = SoftAuthenticator().create(registration["publicKey"])
    late_registration = await finish_registration(
        client, token, registration["ceremony"], credential
    )
    assert_refused(late_registration, 400, "expired")


async def test_a_forged_ceremony_is_refused(
    client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    options = await login_options(client)
    forged = await client.post(
        TOKEN_PASSKEY,
        json={"ceremony": "not-a-ceremony", "credential": ada.get(options["publicKey"])},
    )
    assert_refused(forged, 401, "ceremony")


# --- The authenticator: flags, counter, key, user handle -----------------------------


async def test_an_assertion_without_user_verification_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    refused = await sign_in(client, ada, flags=UP | BE | BS)
    assert_refused(refused, 401, "verify the user")
    assert await last_refusal(app) == "passkey_user_not_verified"


async def test_a_registration_without_user_verification_is_refused(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    options = await registration_options(client, token)
    credential = SoftAuthenticator().create(options["publicKey"], flags=UP | 0x40)
    refused = await finish_registration(client, token, options["ceremony"], credential)
    assert_refused(refused, 400, "verify the user")


async def test_an_assertion_without_user_presence_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    refused = await sign_in(client, ada, flags=0x04)
    assert_refused(refused, 401, "present")
    assert await last_refusal(app) == "passkey_user_not_present"


async def test_a_counter_that_does_not_move_forward_is_refused_and_recorded(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """A cloned authenticator: the original signed in at 5, the clone answers 5,
    then 3. Refused, and the trail says why."""
    assert (await sign_in(client, ada, counter=5)).status_code == 200
    replayed = await sign_in(client, ada, counter=5)
    assert_refused(replayed, 401, "counter", "cloned")
    assert await last_refusal(app) == "passkey_sign_count"
    behind = await sign_in(client, ada, counter=3)
    assert_refused(behind, 401, "counter")
    assert (await sign_in(client, ada, counter=6)).status_code == 200


async def test_of_two_assertions_with_one_counter_at_once_one_signs_in(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """Two ceremonies, each answered with counter 7 (an authenticator and its
    clone at the same moment): both verify against the stored 0, the counter's
    conditional UPDATE lets one through."""
    first, second = await login_options(client), await login_options(client)
    bodies = [
        {"ceremony": options["ceremony"], "credential": ada.get(options["publicKey"], counter=7)}
        for options in (first, second)
    ]
    answers = await asyncio.gather(*(client.post(TOKEN_PASSKEY, json=body) for body in bodies))
    assert sorted(answer.status_code for answer in answers) == [200, 401]
    assert await last_refusal(app) in ("already_used", "passkey_sign_count")


async def test_a_signature_by_another_key_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    refused = await sign_in(client, ada, signing_key=new_key())
    assert_refused(refused, 401, "signature")
    assert await last_refusal(app) == "passkey_signature"


async def test_an_unknown_credential_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    stranger = SoftAuthenticator()
    stranger.create({"challenge": "AA", "rp": {"id": "stack.localhost"}, "user": {"id": "AA"}})
    refused = await sign_in(client, stranger)
    assert_refused(refused, 401, "no account has this passkey")
    assert await last_refusal(app) == "unknown_passkey"


async def test_an_assertion_naming_another_accounts_user_handle_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    bob = await register(client, "bob@example.com")
    bobs = SoftAuthenticator()
    await add_passkey(client, bob["access_token"], bobs)
    refused = await sign_in(client, ada, user_handle=bobs.credentials[0].user_handle)
    assert_refused(refused, 401, "user handle")
    assert await last_refusal(app) == "passkey_user_handle"
    missing = await sign_in(client, ada, with_user_handle=False)
    assert_refused(missing, 401, "user handle")


async def test_a_deactivated_accounts_passkey_signs_nobody_in(
    app: FastAPI,
    client: httpx.AsyncClient,
    ada: SoftAuthenticator,
    user_tokens: dict[str, Any],
    admin_tokens: dict[str, Any],
) -> None:
    answer = await client.patch(
        f"/api/users/{user_tokens['user']['id']}",
        json={"is_active": False},
        headers=bearer(admin_tokens["access_token"]),
    )
    assert answer.status_code == 200
    assert_refused(await sign_in(client, ada), 401, "refused")
    assert await last_refusal(app) == "account_inactive"


async def test_a_malformed_answer_is_a_4xx_never_a_500(
    client: httpx.AsyncClient, ada: SoftAuthenticator, user_tokens: dict[str, Any]
) -> None:
    options = await login_options(client)
    credential = ada.get(options["publicKey"])
    credential["response"]["authenticatorData"] = "AAAA"
    credential["response"]["signature"] = "AAAA"
    garbled = await client.post(
        TOKEN_PASSKEY, json={"ceremony": options["ceremony"], "credential": credential}
    )
    assert_refused(garbled, 401, "refused")
    token = user_tokens["access_token"]
    registration = await registration_options(client, token)
    new = SoftAuthenticator().create(registration["publicKey"])
    new["response"]["attestationObject"] = "o2Nm"  # truncated CBOR
    broken = await finish_registration(client, token, registration["ceremony"], new)
    assert_refused(broken, 400, "malformed")
    not_base64 = await client.post(
        TOKEN_PASSKEY,
        json={"ceremony": "x", "credential": {**credential, "rawId": "not base64url!"}},
    )
    assert not_base64.status_code == 422
    assert ["body", "credential", "rawId"] in [e["loc"] for e in not_base64.json()["detail"]]


async def test_failed_passkey_sign_ins_are_throttled(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Made-up credentials from one address count against one identity: 429."""
    statuses = []
    for _ in range(settings.LOGIN_MAX_FAILURES + 1):
        stranger = SoftAuthenticator()
        stranger.create({"challenge": "AA", "rp": {"id": "stack.localhost"}, "user": {"id": "AA"}})
        statuses.append((await sign_in(client, stranger)).status_code)
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {401}


# --- Registration: someone else's passkey, another account, an API key ---------------


async def test_a_credential_registered_to_another_account_cannot_be_registered_again(
    app: FastAPI, client: httpx.AsyncClient, ada: SoftAuthenticator
) -> None:
    """Bob sends Ada's credential id (with a key of his own) to claim it: 409,
    and Ada's passkey still signs her in."""
    bob = await register(client, "bob@example.com")
    options = await registration_options(client, bob["access_token"])
    stolen_id = ada.credentials[0].id
    credential = SoftAuthenticator().create(options["publicKey"], credential_id=stolen_id)
    refused = await finish_registration(
        client, bob["access_token"], options["ceremony"], credential
    )
    assert_refused(refused, 409, "registered already")
    assert await count(app, "passkeys") == 1
    assert (await sign_in(client, ada)).status_code == 200


async def test_an_api_key_cannot_register_rename_or_remove_passkeys(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], ada: SoftAuthenticator
) -> None:
    token = user_tokens["access_token"]
    created = await client.post(
        "/api/auth/api-keys",
        json={"name": "all", "scopes": ["profile.read", "profile.write", "items.read"]},
        headers=bearer(token),
    )
    key = created.json()["key"]
    [passkey] = await passkeys_of(client, token)
    for method, path, body in [
        ("POST", REGISTER_OPTIONS, None),
        ("POST", PASSKEYS, {"ceremony": "x", "credential": ada.get({"challenge": "AA"})}),
        ("PATCH", f"{PASSKEYS}/{passkey['id']}", {"name": "mine"}),
        ("DELETE", f"{PASSKEYS}/{passkey['id']}", None),
    ]:
        answer = await client.request(method, path, json=body, headers=bearer(key))
        assert_refused(answer, 403, "API key")
    assert await passkeys_of(client, token) == [passkey]


async def test_another_users_passkey_is_not_found(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], ada: SoftAuthenticator
) -> None:
    [passkey] = await passkeys_of(client, user_tokens["access_token"])
    bob = await register(client, "bob@example.com")
    headers = bearer(bob["access_token"])
    renamed = await client.patch(
        f"{PASSKEYS}/{passkey['id']}", json={"name": "Bob's"}, headers=headers
    )
    assert_refused(renamed, 404, "not found")
    removed = await client.delete(f"{PASSKEYS}/{passkey['id']}", headers=headers)
    assert_refused(removed, 404, "not found")
    assert await passkeys_of(client, user_tokens["access_token"]) == [passkey]


async def test_the_login_options_ask_for_nothing_and_name_nobody(client: httpx.AsyncClient) -> None:
    """Open to anyone, and the same shape whoever asks: no account is named."""
    answer = await client.post(LOGIN_OPTIONS, headers={"Authorization": "Bearer nonsense"})
    assert answer.status_code == 200
    assert answer.json()["publicKey"]["allowCredentials"] == []


# --- Taking an account back ends the passkeys whoever had it registered -------------


async def test_the_wasnt_me_link_removes_the_passkeys_a_thief_registered(
    settings: Settings, smtp: SmtpServer, app: FastAPI
) -> None:
    """A thief with the password and a session registers a passkey and changes
    the address; the owner's "this wasn't me" link ends the thief's passkey too."""
    async with mail_app(settings, smtp) as (_, http):
        await register(http)
        thief = await login(http)
        thiefs = SoftAuthenticator()
        await add_passkey(http, thief["access_token"], thiefs)
        changed = await http.patch(
            "/api/users/me",
            json={"email": "thief@evil.example", "current_password": PASSWORD},
            headers=bearer(thief["access_token"]),
        )
        assert changed.status_code == 200, changed.text
        _, token = link_of((await smtp.wait_for_mails(ADA, 2))[-1])
        secured = await http.post("/api/auth/secure-account", json={"token": token})
        assert secured.status_code == 204, secured.text
        assert await count(app, "passkeys") == 0
        assert (await sign_in(http, thiefs)).status_code == 401


async def test_claiming_a_pre_registered_account_removes_the_registrants_passkeys(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Someone registers the victim's address (never verified) and a passkey; the
    address's owner signs in with a provider asserting it verified: the account
    is claimed (app/services/oidc_accounts.py), the registrant's passkey gone."""
    squatter = await register(client, ADA)
    squatters = SoftAuthenticator()
    await add_passkey(client, squatter["access_token"], squatters)
    identity = oidc.Identity(provider="company", subject="victim", email=ADA, email_verified=True)
    async with app.state.session_factory() as db:
        resolved = await oidc_accounts.resolve(db=db, settings=settings, identity=identity)
        assert resolved is not None
        assert resolved.how == "claimed"
        await db.commit()
    assert await count(app, "passkeys") == 0
    assert (await sign_in(client, squatters)).status_code == 401
