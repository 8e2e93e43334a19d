"""Reading the trail: `GET /api/audit/events` for whoever holds audit.read, with
filters and a cursor, newest first; `GET /api/users/me/events` for a user's own."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.audit.helpers import EVENTS, MY_EVENTS, event_page, events
from tests.conftest import ATTACKER_ADDRESS, bearer, login, register


async def fail_login(client: httpx.AsyncClient, email: str = "ada@example.com") -> None:
    refused = await client.post("/api/token/", data={"username": email, "password": "wrong!"})
    assert refused.status_code == 401


async def test_pages_come_newest_first_and_the_cursor_walks_them_without_overlap(
    client: httpx.AsyncClient, root: str
) -> None:
    await register(client)
    await register(client, "bob@example.com")
    for _ in range(4):
        await fail_login(client)
    everything = await events(client, root)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    walked: list[int] = []
    page = await event_page(client, root, limit=3)
    while True:
        assert len(page["items"]) <= 3
        walked += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["items"][-1]["id"]
        page = await event_page(client, root, limit=3, cursor=page["next_cursor"])
    assert walked == ids
    # A page that ends exactly at the last event says so.
    exact = await event_page(client, root, limit=len(ids))
    assert exact["next_cursor"] is None


async def test_a_new_event_does_not_shift_the_pages_being_walked(
    client: httpx.AsyncClient, root: str
) -> None:
    await register(client)
    for _ in range(3):
        await fail_login(client)
    first = await event_page(client, root, limit=2, type="login.failed")
    await fail_login(client)  # newer than every page being walked
    second = await event_page(
        client, root, limit=2, type="login.failed", cursor=first["next_cursor"]
    )
    assert {e["id"] for e in first["items"]}.isdisjoint(e["id"] for e in second["items"])
    assert max(e["id"] for e in second["items"]) < min(e["id"] for e in first["items"])


async def test_filters_by_actor_target_type_and_time(client: httpx.AsyncClient, root: str) -> None:
    ada = (await register(client))["user"]["id"]
    bob = (await register(client, "bob@example.com"))["user"]["id"]
    await fail_login(client, "bob@example.com")
    me = await client.get("/api/users/me", headers=bearer(root))
    admin = me.json()["id"]
    assert (
        await client.delete(f"/api/users/{bob}/sessions", headers=bearer(root))
    ).status_code == 204

    assert {e["target_id"] for e in await events(client, root, target=bob)} == {bob}
    assert [e["type"] for e in await events(client, root, actor=admin, target=bob)] == [
        "sessions.ended"
    ]
    assert {e["actor_id"] for e in await events(client, root, actor=ada)} == {ada}
    failed = await events(client, root, type="login.failed")
    assert [(e["target_id"], e["details"]["reason"]) for e in failed] == [(bob, "wrong_password")]
    newest = (await events(client, root))[0]
    at = datetime.fromisoformat(newest["occurred_at"])
    since = await events(client, root, since=at.isoformat())
    assert newest["id"] in {e["id"] for e in since}
    assert all(datetime.fromisoformat(e["occurred_at"]) >= at for e in since)
    until = await events(client, root, until=at.isoformat())
    assert newest["id"] not in {e["id"] for e in until}
    assert all(datetime.fromisoformat(e["occurred_at"]) < at for e in until)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await events(client, root, since=future) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "login.maybe"}, "type"),
        ({"cursor": 0}, "cursor"),
        ({"cursor": 2**63}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"actor": "me"}, "actor"),
        ({"target": 2**31}, "target"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no time zone
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, None),
    ],
)
async def test_a_bad_filter_is_a_422_naming_it(
    client: httpx.AsyncClient, root: str, query: dict[str, Any], field: str | None
) -> None:
    response = await client.get(EVENTS, params=query, headers=bearer(root))
    assert response.status_code == 422, response.text
    if field is not None:
        assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}
    else:
        assert "`since` must be before `until`" in response.text


async def test_extreme_but_valid_times_are_answered(client: httpx.AsyncClient, root: str) -> None:
    for since, until in (
        ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:01Z"),
    ):
        page = await event_page(client, root, since=since, until=until)
        assert isinstance(page["items"], list)


async def test_only_a_holder_of_audit_read_reads_the_trail(
    client: httpx.AsyncClient, root: str
) -> None:
    ada = await register(client)
    assert (await client.get(EVENTS)).status_code == 401
    refused = await client.get(EVENTS, headers=bearer(ada["access_token"]))
    assert refused.status_code == 403
    role = await client.post(
        "/api/roles", json={"name": "auditor", "permissions": ["audit.read"]}, headers=bearer(root)
    )
    assert role.status_code == 201
    granted = await client.put(
        f"/api/users/{ada['user']['id']}/roles", json={"roles": ["auditor"]}, headers=bearer(root)
    )
    assert granted.status_code == 200
    # At the next request of the same session, as every role change.
    trail = await events(client, ada["access_token"])
    assert "roles.granted" in {e["type"] for e in trail}
    # An auditor's key scoped to audit.read reads it too; one scoped otherwise does not.
    keys = {}
    for scope in ("audit.read", "profile.read"):
        made = await client.post(
            "/api/auth/api-keys",
            json={"name": scope, "scopes": [scope]},
            headers=bearer(ada["access_token"]),
        )
        assert made.status_code == 201
        keys[scope] = made.json()["key"]
    assert (await client.get(EVENTS, headers=bearer(keys["audit.read"]))).status_code == 200
    assert (await client.get(EVENTS, headers=bearer(keys["profile.read"]))).status_code == 403


async def test_a_user_sees_their_own_accounts_events_and_nobody_elses(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, root: str
) -> None:
    ada = await register(client)
    bob = await register(client, "bob@example.com")
    await fail_login(attacker)
    admin_ends = await client.delete(
        f"/api/users/{ada['user']['id']}/sessions", headers=bearer(root)
    )
    assert admin_ends.status_code == 204
    pair = await login(client)
    mine = await events(client, pair["access_token"], MY_EVENTS)
    assert {e["target_id"] for e in mine} == {ada["user"]["id"]}
    kinds = [e["type"] for e in mine]
    assert kinds == ["login.succeeded", "sessions.ended", "login.failed", "user.registered"]
    by_type = {e["type"]: e for e in mine}
    # Someone guessing at the account shows where from; an administrator's act shows who.
    assert by_type["login.failed"]["client_address"] == ATTACKER_ADDRESS
    ended = by_type["sessions.ended"]
    assert ended["actor_id"] != ada["user"]["id"]
    assert (ended["client_address"], ended["user_agent"]) == (None, None)
    # The auditor's view of the same event keeps the address.
    [audited] = await events(client, root, type="sessions.ended")
    assert audited["client_address"] is not None
    # Filters and the cursor work on one's own list, and never reach another's.
    bobs = await events(client, bob["access_token"], MY_EVENTS)
    assert [e["type"] for e in bobs] == ["user.registered"]
    own_page = await event_page(client, pair["access_token"], MY_EVENTS, limit=1)
    assert own_page["next_cursor"] is not None
    leak = await client.get(
        MY_EVENTS, params={"target": bob["user"]["id"]}, headers=bearer(pair["access_token"])
    )
    assert {e["target_id"] for e in leak.json()["items"]} == {ada["user"]["id"]}


async def test_my_events_need_a_sign_in(client: httpx.AsyncClient) -> None:
    assert (await client.get(MY_EVENTS)).status_code == 401
