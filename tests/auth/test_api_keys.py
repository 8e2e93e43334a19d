"""API keys: created (shown once, recognisable, stored as a hash), listed with
their last use, revoked by their owner or an admin, and authenticating as
`Authorization: Bearer <key>` within scopes ∩ the owner's permissions now."""

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth import api_keys
from tests.conftest import bearer, register

KEYS = "/api/auth/api-keys"


async def create_key(
    client: httpx.AsyncClient, token: str, scopes: list[str], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        KEYS, json={"name": "CI", "scopes": scopes, **extra}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_key_is_shown_once_recognisable_and_stored_only_as_its_hash(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    created = await create_key(client, token, ["items.read", "profile.read"], expires_at=expires)
    assert set(created) == {"id", "name", "key", "prefix", "scopes", "created_at", "expires_at"}
    key = created["key"]
    assert re.fullmatch(r"fsk_[0-9A-Za-z]{36}", key)
    assert api_keys.is_well_formed(key)
    assert created["prefix"] == key[:10]
    assert created["scopes"] == ["profile.read", "items.read"]
    async with app.state.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM api_keys"))).mappings().all()
    [row] = rows
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(dict(row))
    listed = await client.get(KEYS, headers=bearer(token))
    assert listed.status_code == 200
    [shown] = listed.json()
    assert "key" not in shown
    assert key not in listed.text
    assert shown["id"] == created["id"]
    assert shown["last_used_at"] is None


def test_the_checksum_tells_a_key_from_a_look_alike() -> None:
    key = api_keys.generate().key
    assert api_keys.is_well_formed(key)
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert not api_keys.is_well_formed(flipped)
    assert not api_keys.is_well_formed(key[:-1])
    assert api_keys.generate().key != key


async def test_a_key_authenticates_as_its_owner_within_its_scopes(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    key = (await create_key(client, user_tokens["access_token"], ["profile.read"]))["key"]
    me = await client.get("/api/users/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json() == user_tokens["user"]
    # items.read is the owner's, but not the key's.
    items = await client.get("/api/items/", headers=bearer(key))
    assert items.status_code == 403
    assert "API key" in items.json()["detail"]
    mine = await client.get("/api/users/me/permissions", headers=bearer(key))
    assert mine.json()["permissions"] == ["profile.read"]


async def test_a_key_uses_cost_one_write_a_minute(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    key = (await create_key(client, token, ["profile.read"]))["key"]
    await client.get("/api/users/me", headers=bearer(key))
    [first] = (await client.get(KEYS, headers=bearer(token))).json()
    assert first["last_used_at"] is not None
    await client.get("/api/users/me", headers=bearer(key))
    [second] = (await client.get(KEYS, headers=bearer(token))).json()
    assert second["last_used_at"] == first["last_used_at"]  # within the minute: no write
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text("UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes'")
        )
    await client.get("/api/users/me", headers=bearer(key))
    [third] = (await client.get(KEYS, headers=bearer(token))).json()
    assert third["last_used_at"] > first["last_used_at"]


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    created = await create_key(client, token, ["profile.read"])
    assert (await client.get("/api/users/me", headers=bearer(created["key"]))).status_code == 200
    revoked = await client.delete(f"{KEYS}/{created['id']}", headers=bearer(token))
    assert revoked.status_code == 204
    refused = await client.get("/api/users/me", headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    again = await client.delete(f"{KEYS}/{created['id']}", headers=bearer(token))
    assert again.status_code == 404
    assert (await client.get(KEYS, headers=bearer(token))).json() == []


async def test_an_expired_key_is_refused(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    created = await create_key(client, user_tokens["access_token"], ["profile.read"])
    async with app.state.engine.begin() as connection:
        await connection.execute(text("UPDATE api_keys SET expires_at = now() - interval '1 s'"))
    assert (await client.get("/api/users/me", headers=bearer(created["key"]))).status_code == 401


@pytest.mark.parametrize("expires_at", ["2001-01-01T00:00:00Z", "2999-01-01T00:00:00", "tomorrow"])
async def test_an_expiry_in_the_past_or_without_a_zone_is_a_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], expires_at: str
) -> None:
    response = await client.post(
        KEYS,
        json={"name": "CI", "scopes": ["items.read"], "expires_at": expires_at},
        headers=bearer(user_tokens["access_token"]),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "expires_at"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"name": "CI", "scopes": []}, ["body", "scopes"]),
        ({"name": "CI", "scopes": ["items.destroy"]}, ["body", "scopes", 0]),
        ({"name": "", "scopes": ["items.read"]}, ["body", "name"]),
        ({"name": "x" * 101, "scopes": ["items.read"]}, ["body", "name"]),
    ],
)
async def test_bad_names_and_scopes_are_a_422(
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    body: dict[str, Any],
    location: list[Any],
) -> None:
    response = await client.post(KEYS, json=body, headers=bearer(user_tokens["access_token"]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location


async def test_a_key_of_a_deactivated_or_deleted_owner_is_refused_at_once(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    root = bearer(admin_tokens["access_token"])
    ada = await register(client, "ada@example.com")
    bob = await register(client, "bob@example.com")
    ada_key = (await create_key(client, ada["access_token"], ["profile.read"]))["key"]
    bob_key = (await create_key(client, bob["access_token"], ["profile.read"]))["key"]
    for key in (ada_key, bob_key):
        assert (await client.get("/api/users/me", headers=bearer(key))).status_code == 200
    await client.patch(f"/api/users/{ada['user']['id']}", json={"is_active": False}, headers=root)
    await client.delete(f"/api/users/{bob['user']['id']}", headers=root)
    for key in (ada_key, bob_key):
        assert (await client.get("/api/users/me", headers=bearer(key))).status_code == 401
    # Reactivated, the key works again: it was the account that was refused.
    await client.patch(f"/api/users/{ada['user']['id']}", json={"is_active": True}, headers=root)
    assert (await client.get("/api/users/me", headers=bearer(ada_key))).status_code == 200


async def test_a_keys_rights_follow_its_owners_roles_at_once(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    root = bearer(admin_tokens["access_token"])
    user_id = user_tokens["user"]["id"]
    await client.post(
        "/api/roles", json={"name": "support", "permissions": ["users.read"]}, headers=root
    )
    await client.put(f"/api/users/{user_id}/roles", json={"roles": ["support"]}, headers=root)
    key = (await create_key(client, user_tokens["access_token"], ["users.read"]))["key"]
    assert (await client.get("/api/users/", headers=bearer(key))).status_code == 200
    await client.put(f"/api/users/{user_id}/roles", json={"roles": []}, headers=root)
    assert (await client.get("/api/users/", headers=bearer(key))).status_code == 403
    await client.put(f"/api/users/{user_id}/roles", json={"roles": ["support"]}, headers=root)
    assert (await client.get("/api/users/", headers=bearer(key))).status_code == 200


async def test_admins_list_and_revoke_a_users_keys(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    root = bearer(admin_tokens["access_token"])
    user_id = user_tokens["user"]["id"]
    created = await create_key(client, user_tokens["access_token"], ["profile.read"])
    listed = await client.get(f"/api/users/{user_id}/api-keys", headers=root)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()] == [created["id"]]
    assert created["key"] not in listed.text
    revoked = await client.delete(f"/api/users/{user_id}/api-keys/{created['id']}", headers=root)
    assert revoked.status_code == 204
    assert (await client.get("/api/users/me", headers=bearer(created["key"]))).status_code == 401
    missing = await client.get("/api/users/2000000000/api-keys", headers=root)
    assert missing.status_code == 404
    # Not the user's own route: without users.sessions, 403.
    own = await client.get(
        f"/api/users/{user_id}/api-keys", headers=bearer(user_tokens["access_token"])
    )
    assert own.status_code == 403
