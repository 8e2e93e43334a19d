"""API keys under attack: every route only a session may use refuses a key
whatever its scopes, no route lets a key act beyond its scopes (both derived
from the routes' own declarations, so a new route is covered), forged and
mangled keys are refused, a key cannot mint scopes its owner lacks, and
verifying one costs one statement."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth import api_keys
from app.config import Settings
from app.policy import Permission
from tests.conftest import bearer, register
from tests.security.surface import (
    Operation,
    World,
    example_request_body,
    operations,
    populate,
    send,
    snapshot,
)
from tests.security.test_role_escalation import counted_statements
from tests.test_route_permissions import declared, session_only

ALL_SCOPES = [p.value for p in Permission]


def _app_routes() -> tuple[set[tuple[str, str]], dict[tuple[str, str], list[Permission]]]:
    from app.main import create_app
    from tests.conftest import TEST_SECRET_KEY

    app = create_app(Settings(_env_file=None, ENVIRONMENT="test", SECRET_KEY=TEST_SECRET_KEY))
    return session_only(app), declared(app)


SESSION_ONLY, DECLARED = _app_routes()
BY_KEY = {(op.method, op.path): op for op in operations()}
SESSION_ONLY_OPERATIONS = sorted((BY_KEY[key] for key in SESSION_ONLY), key=str)
SCOPED_OPERATIONS = sorted(
    (
        BY_KEY[key]
        for key, permissions in DECLARED.items()
        if permissions and key not in SESSION_ONLY
    ),
    key=str,
)


@pytest.fixture
async def world(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> World:
    return await populate(client, admin_tokens)


async def key_of(client: httpx.AsyncClient, token: str, scopes: list[str]) -> str:
    response = await client.post(
        "/api/auth/api-keys", json={"name": "k", "scopes": scopes}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def test_the_suite_covers_what_the_issue_forbids_to_keys() -> None:
    named = {f"{method} {path}" for method, path in SESSION_ONLY}
    assert {
        "POST /api/auth/api-keys",  # create keys
        "POST /api/users/me/password",  # change a password
        "PATCH /api/users/me",  # change an email
        "PUT /api/users/{user_id}/roles",  # change roles
        "PUT /api/roles/{name}",
        "POST /api/auth/logout-all",  # end sessions
        "DELETE /api/auth/sessions/{session_id}",
        "DELETE /api/users/{user_id}/sessions",
        "POST /api/auth/totp/setup",  # set up or turn off the second factor
        "POST /api/auth/totp/disable",
    } <= named
    assert len(SCOPED_OPERATIONS) >= 10


@pytest.mark.parametrize("operation", SESSION_ONLY_OPERATIONS, ids=str)
async def test_a_key_with_every_scope_is_refused_where_only_a_session_may_act(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    """The admin's own key, every scope: still 403, and nothing changes."""
    key = await key_of(client, world.admin["access_token"], ALL_SCOPES)
    before = await snapshot(app)
    response = await send(
        client, operation, world.url(operation), token=key, body=example_request_body(operation)
    )
    assert response.status_code == 403, response.text
    assert "API key" in response.json()["detail"]
    after = await snapshot(app)
    # Only the key's own last use may have been written.
    before.pop("api_keys"), after.pop("api_keys")
    assert after == before


@pytest.mark.parametrize("operation", SCOPED_OPERATIONS, ids=str)
async def test_a_key_never_acts_beyond_its_scopes(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    """The admin's key holding every scope but the one the route declares: 403,
    nothing changed; the control, the scope itself, gets through that check."""
    [needed] = DECLARED[(operation.method, operation.path)]
    caller = world.caller(operation)["access_token"]
    others = [scope for scope in ALL_SCOPES if scope != needed.value]
    held = (await client.get("/api/users/me/permissions", headers=bearer(caller))).json()
    narrow = await key_of(client, caller, [s for s in others if s in held["permissions"]])
    before = await snapshot(app)
    body = example_request_body(operation)
    response = await send(client, operation, world.url(operation), token=narrow, body=body)
    assert response.status_code == 403, response.text
    after = await snapshot(app)
    before.pop("api_keys"), after.pop("api_keys")
    assert after == before
    scoped = await key_of(client, caller, [needed.value])
    control = await send(client, operation, world.url(operation), token=scoped, body=body)
    assert control.status_code != 403 or "API key" not in control.text, control.text


async def test_a_key_cannot_be_scoped_beyond_its_owners_permissions(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/auth/api-keys",
        json={"name": "escalate", "scopes": ["items.read", "users.write"]},
        headers=bearer(user_tokens["access_token"]),
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Not enough privileges: you do not hold users.write"}


@pytest.mark.parametrize(
    "forged",
    [
        api_keys.generate().key,  # well formed, never issued
        "fsk_" + "A" * 36,  # wrong checksum
        "fsk_",
        "fsk_" + "A" * 300,
        "fsk_' OR '1'='1",
        "fsk_" + "A" * 35 + "-",
    ],
    ids=["never-issued", "bad-checksum", "empty", "long", "sql", "punctuation"],
)
async def test_forged_keys_are_401(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], forged: str
) -> None:
    await key_of(client, user_tokens["access_token"], ["profile.read"])
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_the_hash_of_a_key_is_not_a_key(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    key = await key_of(client, user_tokens["access_token"], ["profile.read"])
    for stolen in (api_keys.hash_key(key), key.upper(), key[:-1], key + "x"):
        assert (await client.get("/api/users/me", headers=bearer(stolen))).status_code == 401


async def test_a_key_request_costs_one_statement_and_a_mangled_key_none(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await key_of(client, user_tokens["access_token"], ["profile.read"])
    with counted_statements(app, monkeypatch) as statements:
        assert (await client.get("/api/users/me", headers=bearer(key))).status_code == 200
    assert len(statements) == 1
    with counted_statements(app, monkeypatch) as statements:
        mangled = key[:-1] + ("A" if key[-1] != "A" else "B")
        assert (await client.get("/api/users/me", headers=bearer(mangled))).status_code == 401
    assert statements == []


async def test_another_users_key_cannot_be_revoked_or_seen(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    victim_key = await client.post(
        "/api/auth/api-keys",
        json={"name": "victim", "scopes": ["profile.read"]},
        headers=bearer(user_tokens["access_token"]),
    )
    attacker = await register(client, "attacker@example.com")
    headers = bearer(attacker["access_token"])
    revoke = await client.delete(f"/api/auth/api-keys/{victim_key.json()['id']}", headers=headers)
    assert revoke.status_code == 404
    assert (await client.get("/api/auth/api-keys", headers=headers)).json() == []
    works = await client.get("/api/users/me", headers=bearer(victim_key.json()["key"]))
    assert works.status_code == 200
