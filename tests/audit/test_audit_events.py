"""Every security event is on record, with who did it, to whom, from where, and
in the transaction of what it records: no event for a refused or rolled-back
action, no action without its event. Never a password, token or key."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.config import Settings
from tests.audit.helpers import events, raw_trail, the_event
from tests.conftest import (
    ATTACKER_ADDRESS,
    CLIENT_ADDRESS,
    PASSWORD,
    app_with,
    bearer,
    client_at,
    login,
    register,
)

AGENT = "AuditTest/1.0 (X11; Linux)"


@pytest.fixture
async def ada(client: httpx.AsyncClient) -> dict[str, Any]:
    """A registered user, whose client sends AGENT from CLIENT_ADDRESS."""
    client.headers["User-Agent"] = AGENT
    return await register(client)


async def user_id_of(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 200
    user_id: int = response.json()["id"]
    return user_id


async def count_events(app: FastAPI) -> int:
    async with app.state.engine.connect() as connection:
        count: int = await connection.scalar(text("SELECT count(*) FROM audit_events"))
    return count


# --- sign-in -----------------------------------------------------------------------


async def test_a_registration_and_a_login_are_recorded_with_their_client(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    pair = await login(client)
    ada_id = ada["user"]["id"]
    registered = await the_event(client, root, "user.registered")
    assert registered["actor_id"] == registered["target_id"] == ada_id
    assert (registered["client_address"], registered["user_agent"]) == (CLIENT_ADDRESS, AGENT)
    [logged_in] = await events(client, root, type="login.succeeded", target=ada_id)
    assert logged_in["actor_id"] == ada_id
    assert logged_in["details"]["method"] == "password"
    # The login's session is named, as GET /api/auth/sessions lists it.
    sessions = await client.get("/api/auth/sessions", headers=bearer(pair["access_token"]))
    current = next(s for s in sessions.json() if s["current"])
    assert logged_in["details"]["session_id"] == current["id"]
    assert logged_in["details"]["new_device"] is False  # registered from this client
    assert registered["occurred_at"] <= logged_in["occurred_at"]


async def test_failed_logins_record_why_and_never_the_password_tried(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    wrong = "Tr0ub4dor&3-not-it"
    for username in ("ada@example.com", "nobody@example.com"):
        refused = await client.post("/api/token/", data={"username": username, "password": wrong})
        assert refused.status_code == 401
    # A password typed into the email field is not kept either.
    typo = await client.post("/api/token/", data={"username": wrong, "password": wrong})
    assert typo.status_code in (401, 422)
    failed = await events(client, root, type="login.failed")
    reasons = sorted((e["details"]["reason"], e["target_id"]) for e in failed)
    assert ("wrong_password", ada["user"]["id"]) in reasons
    assert ("unknown_account", None) in reasons
    assert all(e["actor_id"] is None and e["client_address"] == CLIENT_ADDRESS for e in failed)
    trail = await raw_trail(client, root)
    assert wrong not in trail
    assert PASSWORD not in trail
    assert "nobody@example.com" not in trail


async def test_a_deactivated_account_and_an_unverified_one_are_recorded_as_such(
    settings: Settings, client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    deactivated = await client.patch(
        f"/api/users/{ada['user']['id']}", json={"is_active": False}, headers=bearer(root)
    )
    assert deactivated.status_code == 200
    refused = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401
    assert (await the_event(client, root, "login.failed"))["details"] == {
        "reason": "account_inactive"
    }
    async with (
        app_with(settings, LOGIN_REQUIRES_VERIFIED_EMAIL=True) as strict,
        client_at(strict, CLIENT_ADDRESS) as http,
    ):
        await register(http, "bob@example.com")
        unverified = await http.post(
            "/api/token/", data={"username": "bob@example.com", "password": PASSWORD}
        )
        assert unverified.status_code == 403
    reasons = [e["details"]["reason"] for e in await events(client, root, type="login.failed")]
    assert reasons == ["email_not_verified", "account_inactive"]  # newest first


async def test_a_login_refused_by_the_throttle_writes_nothing(
    settings: Settings, client: httpx.AsyncClient, ada: dict[str, Any], app: FastAPI
) -> None:
    form = {"username": "ada@example.com", "password": "wrong-password"}
    for _ in range(settings.LOGIN_MAX_FAILURES):
        assert (await client.post("/api/token/", data=form)).status_code == 401
    before = await count_events(app)
    for _ in range(5):
        assert (await client.post("/api/token/", data=form)).status_code == 429
    assert await count_events(app) == before


# --- sessions --------------------------------------------------------------------


async def test_logouts_and_ended_sessions_are_recorded(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    ada_id = ada["user"]["id"]
    one, two, three = [await login(client) for _ in range(3)]
    logged_out = await client.post("/api/auth/logout", json={"refresh_token": ada["refresh_token"]})
    assert logged_out.status_code == 204
    ended = await client.delete(
        f"/api/auth/sessions/{await session_of(client, one)}", headers=bearer(two["access_token"])
    )
    assert ended.status_code == 204
    everywhere = await client.post("/api/auth/logout-all", headers=bearer(three["access_token"]))
    assert everywhere.status_code == 204
    admin_ends = await client.delete(f"/api/users/{ada_id}/sessions", headers=bearer(root))
    assert admin_ends.status_code == 204
    trail = await events(client, root, target=ada_id)
    kinds = [e["type"] for e in trail if e["type"] != "login.succeeded"]
    assert kinds == [
        "sessions.ended",
        "logout.everywhere",
        "session.ended",
        "logout",
        "user.registered",
    ]
    admin_id = await user_id_of(client, root)
    by = {e["type"]: e["actor_id"] for e in trail}
    assert by["sessions.ended"] == admin_id
    assert by["logout"] == by["session.ended"] == by["logout.everywhere"] == ada_id
    # Logging out a session already ended ends nothing, and records nothing.
    again = await client.post("/api/auth/logout", json={"refresh_token": ada["refresh_token"]})
    assert again.status_code == 204
    assert len(await events(client, root, type="logout")) == 1
    assert ada["refresh_token"] not in await raw_trail(client, root)


async def session_of(client: httpx.AsyncClient, pair: dict[str, Any]) -> str:
    response = await client.get("/api/auth/sessions", headers=bearer(pair["access_token"]))
    session_id: str = next(s["id"] for s in response.json() if s["current"])
    return session_id


async def test_a_reused_refresh_token_is_recorded_with_the_address_that_reused_it(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    stolen = ada["refresh_token"]
    session_id = await session_of(client, ada)
    assert (
        await client.post("/api/token/refresh", json={"refresh_token": stolen})
    ).status_code == 200
    replay = await attacker.post("/api/token/refresh", json={"refresh_token": stolen})
    assert replay.status_code == 401
    reused = await the_event(client, root, "refresh.reused")
    assert reused["target_id"] == ada["user"]["id"]
    assert reused["actor_id"] is None
    assert reused["client_address"] == ATTACKER_ADDRESS
    assert reused["details"] == {"session_id": session_id}


# --- credentials -------------------------------------------------------------------


async def test_a_password_change_is_recorded_and_a_refused_one_is_not(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    headers = bearer(ada["access_token"])
    new = "a-brand-new-passphrase"
    wrong = await client.post(
        "/api/users/me/password",
        json={"current_password": "not-the-password", "new_password": new},
        headers=headers,
    )
    assert wrong.status_code == 400
    assert await events(client, root, type="password.changed") == []
    changed = await client.post(
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": new},
        headers=headers,
    )
    assert changed.status_code == 204
    event = await the_event(client, root, "password.changed")
    assert event["actor_id"] == event["target_id"] == ada["user"]["id"]
    assert event["details"] == {}
    trail = await raw_trail(client, root)
    assert new not in trail
    assert PASSWORD not in trail


# --- what an administrator does to an account -----------------------------------------


async def test_deactivation_reactivation_email_and_admin_changes_are_recorded(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    ada_id = ada["user"]["id"]
    url = f"/api/users/{ada_id}"
    for change in (
        {"is_active": False},
        {"is_active": True},
        {"email": "ada@elsewhere.example"},
        {"is_superuser": True},
        {"is_superuser": False},
        {"full_name": "Ada L."},  # not a security event
    ):
        assert (await client.patch(url, json=change, headers=bearer(root))).status_code == 200
    trail = await events(client, root, target=ada_id)
    assert [(e["type"], e["details"]) for e in trail if e["actor_id"] != ada_id] == [
        ("roles.revoked", {"roles": ["admin"]}),
        ("roles.granted", {"roles": ["admin"]}),
        ("email.changed", {"from": "ada@example.com", "to": "ada@elsewhere.example"}),
        ("user.reactivated", {}),
        ("user.deactivated", {}),
    ]


async def test_a_deleted_account_keeps_its_record(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    ada_id = ada["user"]["id"]
    assert (await client.delete(f"/api/users/{ada_id}", headers=bearer(root))).status_code == 204
    deleted = await the_event(client, root, "user.deleted")
    assert deleted["target_id"] == ada_id
    assert deleted["details"] == {"email": "ada@example.com"}
    # What happened before the deletion stays too.
    assert [e["type"] for e in await events(client, root, target=ada_id)] == [
        "user.deleted",
        "user.registered",
    ]


async def test_deleting_ones_own_account_is_recorded(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    gone = await client.delete("/api/users/me", headers=bearer(ada["access_token"]))
    assert gone.status_code == 204
    deleted = await the_event(client, root, "user.deleted")
    assert deleted["actor_id"] == deleted["target_id"] == ada["user"]["id"]


# --- roles ----------------------------------------------------------------------------


async def test_roles_defined_granted_and_withdrawn_are_recorded(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    ada_id = ada["user"]["id"]
    admin = bearer(root)
    created = await client.post(
        "/api/roles",
        json={"name": "support", "description": "Helps", "permissions": ["users.read"]},
        headers=admin,
    )
    assert created.status_code == 201
    granted = await client.put(
        f"/api/users/{ada_id}/roles", json={"roles": ["support", "admin"]}, headers=admin
    )
    assert granted.status_code == 200
    updated = await client.put(
        "/api/roles/support",
        json={"description": "Helps more", "permissions": ["users.read", "audit.read"]},
        headers=admin,
    )
    assert updated.status_code == 200
    withdrawn = await client.put(
        f"/api/users/{ada_id}/roles", json={"roles": ["support"]}, headers=admin
    )
    assert withdrawn.status_code == 200
    unchanged = await client.put(
        f"/api/users/{ada_id}/roles", json={"roles": ["support"]}, headers=admin
    )
    assert unchanged.status_code == 200
    assert (await client.delete("/api/roles/support", headers=admin)).status_code == 204
    admin_id = await user_id_of(client, root)
    trail = [
        e for e in await events(client, root, actor=admin_id) if e["type"] != "login.succeeded"
    ]
    assert [(e["type"], e["target_id"], e["details"]) for e in trail] == [
        (
            "role.deleted",
            None,
            {
                "role": "support",
                "description": "Helps more",
                "permissions": ["users.read", "audit.read"],
            },
        ),
        ("roles.revoked", ada_id, {"roles": ["admin"]}),
        (
            "role.updated",
            None,
            {
                "role": "support",
                "description": "Helps more",
                "permissions": ["users.read", "audit.read"],
            },
        ),
        ("roles.granted", ada_id, {"roles": ["admin", "support"]}),
        (
            "role.created",
            None,
            {"role": "support", "description": "Helps", "permissions": ["users.read"]},
        ),
    ]


async def test_a_refused_role_change_records_nothing(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str, app: FastAPI
) -> None:
    admin_id = await user_id_of(client, root)
    before = await count_events(app)
    taken = await client.post(
        "/api/roles", json={"name": "admin", "permissions": ["users.read"]}, headers=bearer(root)
    )
    assert taken.status_code == 409
    # The last holder of roles.manage cannot lose it: refused, rolled back, unrecorded.
    last = await client.put(
        f"/api/users/{admin_id}/roles", json={"roles": []}, headers=bearer(root)
    )
    assert last.status_code == 409
    beyond = await client.post(
        "/api/roles",
        json={"name": "sneaky", "permissions": ["users.read"]},
        headers=bearer(ada["access_token"]),
    )
    assert beyond.status_code == 403
    assert await count_events(app) == before


# --- API keys ------------------------------------------------------------------------


async def test_keys_created_and_revoked_are_recorded_without_the_key(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str
) -> None:
    headers = bearer(ada["access_token"])
    made = []
    for name in ("CI", "laptop"):
        response = await client.post(
            "/api/auth/api-keys", json={"name": name, "scopes": ["items.read"]}, headers=headers
        )
        assert response.status_code == 201
        made.append(response.json())
    ci, laptop = made
    assert (
        await client.delete(f"/api/auth/api-keys/{ci['id']}", headers=headers)
    ).status_code == 204
    by_admin = await client.delete(
        f"/api/users/{ada['user']['id']}/api-keys/{laptop['id']}", headers=bearer(root)
    )
    assert by_admin.status_code == 204
    created = await events(client, root, type="api_key.created")
    assert [e["details"] for e in created] == [
        {
            "key_id": key["id"],
            "name": key["name"],
            "prefix": key["prefix"],
            "scopes": ["items.read"],
        }
        for key in (laptop, ci)
    ]
    revoked = await events(client, root, type="api_key.revoked")
    admin_id = await user_id_of(client, root)
    assert [(e["actor_id"], e["target_id"], e["details"]["key_id"]) for e in revoked] == [
        (admin_id, ada["user"]["id"], laptop["id"]),
        (ada["user"]["id"], ada["user"]["id"], ci["id"]),
    ]
    trail = await raw_trail(client, root)
    assert ci["key"] not in trail
    assert laptop["key"] not in trail


# --- the same transaction -----------------------------------------------------------


async def test_an_action_whose_event_cannot_be_written_does_not_happen(
    client: httpx.AsyncClient, ada: dict[str, Any], root: str, app: FastAPI
) -> None:
    """The event and its action commit together: when the event's insert fails,
    the role is not created either."""
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "ALTER TABLE audit_events ADD CONSTRAINT no_role_events"
                " CHECK (type NOT LIKE 'role.%') NOT VALID"
            )
        )
    try:
        with pytest.raises(Exception, match="no_role_events"):
            await client.post(
                "/api/roles",
                json={"name": "ghost", "permissions": ["users.read"]},
                headers=bearer(root),
            )
    finally:
        async with app.state.engine.begin() as connection:
            await connection.execute(
                text("ALTER TABLE audit_events DROP CONSTRAINT no_role_events")
            )
    roles = await client.get("/api/roles", headers=bearer(root))
    assert "ghost" not in {role["name"] for role in roles.json()}
