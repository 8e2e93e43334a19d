"""The API through Traefik over HTTPS: the token flow and the proxy's limits."""

from typing import Any

from tests.stack.conftest import PASSWORD, Stack


def test_register_login_items_refresh_logout_over_https(stack: Stack, user: dict[str, Any]) -> None:
    assert user["token_type"] == "bearer"
    assert user["access_token"]
    assert user["refresh_token"]
    with stack.client() as client:
        login = client.post("/api/token/", data={"username": user["email"], "password": PASSWORD})
        assert login.status_code == 200, login.text
        tokens = login.json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}

        item = {
            "name": "Lamp",
            "price": 10.5,
            "tax": 2.1,
            "tags": ["home"],
            "image": {"url": "https://example.com/l.png", "name": "lamp"},
        }
        created = client.post("/api/items/", json=item, headers=auth)
        assert created.status_code == 201, created.text
        assert created.json()["total"] == 12.6
        listed = client.get("/api/items/", headers=auth)
        assert listed.status_code == 200
        assert created.json()["id"] in [i["id"] for i in listed.json()["items"]]

        refreshed = client.post(
            "/api/token/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert (
            client.post(
                "/api/token/refresh", json={"refresh_token": tokens["refresh_token"]}
            ).status_code
            == 401
        )

        new_refresh = refreshed.json()["refresh_token"]
        assert (
            client.post("/api/auth/logout", json={"refresh_token": new_refresh}).status_code == 204
        )
        assert (
            client.post("/api/token/refresh", json={"refresh_token": new_refresh}).status_code
            == 401
        )


def test_oversized_body_is_refused_by_the_proxy(stack: Stack, user: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    body = {"name": "big", "price": 1, "description": "x" * (2 * 1024 * 1024)}
    with stack.client() as client:
        response = client.post("/api/items/", json=body, headers=auth)
    assert response.status_code == 413


def test_the_jwks_is_served_through_the_proxy(stack: Stack) -> None:
    """Another service behind the same Traefik fetches the token verification keys;
    the stack signs with HS256, whose secret is never published."""
    with stack.client() as client:
        response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    assert response.json() == {"keys": []}
    assert response.headers["Cache-Control"] == "public, max-age=300"


def test_a_granted_role_and_a_revoked_key_take_effect_at_the_next_request(
    stack: Stack, user: dict[str, Any]
) -> None:
    """Through Traefik, across the replicas: an admin grants a role and the user's
    very next request has it (same access token); a key works until revoked, then
    is refused at once; the audit trail records each with the client's address."""
    with stack.client() as client:
        admin_login = client.post(
            "/api/token/",
            data={
                "username": stack.settings["FIRST_SUPERUSER_EMAIL"],
                "password": stack.settings["FIRST_SUPERUSER_PASSWORD"],
            },
        )
        assert admin_login.status_code == 200, admin_login.text
        admin = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
        login = client.post("/api/token/", data={"username": user["email"], "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        user_id = user["user"]["id"]

        assert client.get("/api/users/", headers=auth).status_code == 403
        role = {
            "name": "e2e-auditor",
            "description": "reads accounts",
            "permissions": ["users.read"],
        }
        assert client.post("/api/roles", json=role, headers=admin).status_code == 201
        granted = client.put(
            f"/api/users/{user_id}/roles", json={"roles": ["e2e-auditor"]}, headers=admin
        )
        assert granted.status_code == 200, granted.text
        assert client.get("/api/users/", headers=auth).status_code == 200
        mine = client.get("/api/users/me/permissions", headers=auth).json()
        assert mine["roles"] == ["e2e-auditor"]
        assert "users.read" in mine["permissions"]

        created = client.post(
            "/api/auth/api-keys", json={"name": "e2e", "scopes": ["items.read"]}, headers=auth
        )
        assert created.status_code == 201, created.text
        key = {"Authorization": f"Bearer {created.json()['key']}"}
        assert client.get("/api/items/", headers=key).status_code == 200
        # Outside its scopes, though the owner holds users.read now.
        assert client.get("/api/users/", headers=key).status_code == 403
        revoked = client.delete(f"/api/auth/api-keys/{created.json()['id']}", headers=auth)
        assert revoked.status_code == 204
        # Every replica refuses it at once: no cache to wait out.
        for _ in range(6):
            assert client.get("/api/items/", headers=key).status_code == 401

        # All of it is on record, from the client Traefik saw: the address the
        # user's session lists, and the User-Agent as sent.
        trail = client.get("/api/audit/events", params={"target": user_id}, headers=admin)
        assert trail.status_code == 200, trail.text
        events = {event["type"]: event for event in trail.json()["items"]}
        assert {"roles.granted", "api_key.created", "api_key.revoked"} <= set(events)
        assert events["roles.granted"]["details"] == {"roles": ["e2e-auditor"]}
        assert events["api_key.revoked"]["details"]["key_id"] == created.json()["id"]
        sessions = client.get("/api/auth/sessions", headers=auth).json()
        seen_from = next(s for s in sessions if s["current"])["client_address"]
        for kind in ("roles.granted", "api_key.created", "api_key.revoked"):
            event = events[kind]
            assert event["client_address"] == seen_from
            assert event["user_agent"] == client.headers["User-Agent"]
