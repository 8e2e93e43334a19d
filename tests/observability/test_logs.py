"""The log in JSON: one object a line with the request's fields, and never a
secret of a login, refresh or password-reset flow."""

import json
import logging

import httpx
import pytest

from app.observability.logs import JsonFormatter, RequestIdFilter
from tests.conftest import PASSWORD, bearer, register


async def test_a_login_refresh_and_reset_flow_logs_no_secret(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    formatter, stamp = JsonFormatter(), RequestIdFilter()
    with caplog.at_level(logging.DEBUG):
        pair = await register(client, email="quiet@example.com")
        logged_in = await client.post(
            "/api/token/", data={"username": "quiet@example.com", "password": PASSWORD}
        )
        refreshed = await client.post(
            "/api/token/refresh", json={"refresh_token": logged_in.json()["refresh_token"]}
        )
        await client.get("/api/users/me", headers=bearer(refreshed.json()["access_token"]))
        await client.post("/api/auth/password-recovery", json={"email": "quiet@example.com"})
        await client.post(
            "/api/auth/reset-password",
            json={"token": "a-made-up-reset-token", "new_password": "N3w-secret-pass!"},
        )
    secrets = [
        PASSWORD,
        "N3w-secret-pass!",
        "a-made-up-reset-token",
        pair["access_token"],
        pair["refresh_token"],
        logged_in.json()["access_token"],
        logged_in.json()["refresh_token"],
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
    ]
    lines = []
    for record in caplog.records:
        stamp.filter(record)
        lines.append(formatter.format(record))
    assert lines
    for line in lines:
        parsed = json.loads(line)
        assert {"time", "level", "logger", "request_id", "message"} <= parsed.keys()
        for secret in secrets:
            assert secret not in line, line
        assert "authorization" not in line.lower()


def test_a_request_line_holds_its_fields() -> None:
    record = logging.LogRecord(
        "app.access", logging.INFO, __file__, 1, "GET %s %d", ("/x", 200), None
    )
    record.__dict__.update(method="GET", route="/x", status=200, duration_ms=1.5, request_id="abc")
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "/x"
    assert line["status"] == 200
    assert line["duration_ms"] == 1.5
    assert line["request_id"] == "abc"
    assert line["message"] == "GET /x 200"
