"""Traefik throttles the credential endpoints before the app sees the burst."""

from tests.stack.conftest import Stack


def test_credential_endpoints_are_rate_limited(stack: Stack) -> None:
    statuses = []
    with stack.client() as client:
        for _ in range(60):
            response = client.post("/api/auth/register", json={})
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429, statuses
        assert "application/json" not in response.headers.get("content-type", ""), (
            "429 came from the app"
        )
        assert set(statuses[:-1]) <= {422}, statuses
        assert (
            client.post(
                "/api/token/", data={"username": "a@example.com", "password": "x" * 8}
            ).status_code
            == 429
        )
        # Everything else is not throttled.
        assert [client.get("/api/health").status_code for _ in range(10)] == [200] * 10
