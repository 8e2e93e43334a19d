"""Every request has one id: the trusted proxy's (its traceparent's trace id, else
its well-formed X-Request-Id), else a new one; answered in X-Request-Id and on
every log line written for the request, a 500's included."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.observability.proxy import behind_proxy
from app.observability.request_id import trace_id_of
from tests.conftest import CLIENT_ADDRESS

TRAEFIK = "198.18.200.2"
TRUSTED = "198.18.200.0/24"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@asynccontextmanager
async def served_from(app: FastAPI, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app as gunicorn.conf.py's post_worker_init wraps it, reached from `peer`."""
    served: Any = behind_proxy(app, TRUSTED)
    transport = httpx.ASGITransport(app=served, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


def is_new_id(value: str) -> bool:
    return len(value) == 32 and all(char in "0123456789abcdef" for char in value)


async def test_each_answer_carries_a_new_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/health")
    second = await client.get("/api/health")
    assert is_new_id(first.headers["X-Request-Id"])
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


async def test_the_trusted_proxys_trace_id_is_the_request_id(app: FastAPI) -> None:
    async with served_from(app, TRAEFIK) as http:
        answer = await http.get(
            "/api/health", headers={"traceparent": TRACEPARENT, "X-Request-Id": "abcdefgh-1"}
        )
    assert answer.headers["X-Request-Id"] == TRACE_ID


async def test_the_trusted_proxys_request_id_is_kept_without_a_traceparent(app: FastAPI) -> None:
    async with served_from(app, TRAEFIK) as http:
        answer = await http.get("/api/health", headers={"X-Request-Id": "lb-7f3a.2024:01"})
    assert answer.headers["X-Request-Id"] == "lb-7f3a.2024:01"


@pytest.mark.parametrize(
    "given",
    [
        "short",
        "x" * 65,
        "has space in it",
        "new\\nline-injected",
        'quote"d-value',
        "ünïcödé-value",
    ],
)
async def test_a_malformed_request_id_is_replaced(app: FastAPI, given: str) -> None:
    async with served_from(app, TRAEFIK) as http:
        answer = await http.get("/api/health", headers={b"X-Request-Id": given.encode()})
    assert answer.status_code == 200
    assert is_new_id(answer.headers["X-Request-Id"])


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-0000000000000000-01",
        f"01-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",
        "garbage",
        "",
    ],
)
def test_a_malformed_traceparent_gives_no_trace_id(traceparent: str) -> None:
    assert trace_id_of(traceparent.encode()) is None


async def test_an_untrusted_peers_ids_are_not_taken(app: FastAPI) -> None:
    async with served_from(app, CLIENT_ADDRESS) as http:
        answer = await http.get(
            "/api/health",
            headers={"traceparent": TRACEPARENT, "X-Request-Id": "chosen-by-the-client"},
        )
    assert answer.headers["X-Request-Id"] not in (TRACE_ID, "chosen-by-the-client")
    assert is_new_id(answer.headers["X-Request-Id"])


async def test_without_the_servers_mark_no_peer_is_trusted(client: httpx.AsyncClient) -> None:
    """Served by anything but gunicorn.conf.py's workers (tests, `make dev`)."""
    answer = await client.get("/api/health", headers={"X-Request-Id": "chosen-by-the-client"})
    assert answer.headers["X-Request-Id"] != "chosen-by-the-client"


async def test_every_log_line_of_a_request_carries_its_id(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_from(app, TRAEFIK) as http:
        with caplog.at_level(logging.INFO):
            await http.post(
                "/api/token/",
                data={"username": "nobody@example.com", "password": "wrong-password-1"},
                headers={"X-Request-Id": "login-request-0001"},
            )
    lines = [record for record in caplog.records if record.name.startswith("app")]
    assert lines, "the request wrote its access line at least"
    assert {getattr(record, "request_id", None) for record in lines} == {"login-request-0001"}


async def test_a_500_has_its_id_its_header_and_its_error_line(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/api/test-observability-boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("boom")

    app.middleware_stack = None  # rebuilt with the new route
    try:
        transport = httpx.ASGITransport(
            app=behind_proxy(app, TRUSTED),
            client=(TRAEFIK, 40000),
            raise_app_exceptions=False,
        )
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            with caplog.at_level(logging.INFO):
                answer = await http.get(
                    "/api/test-observability-boom", headers={"X-Request-Id": "failing-request-1"}
                )
    finally:
        app.router.routes.pop()
        app.middleware_stack = None
    assert answer.status_code == 500
    assert answer.headers["X-Request-Id"] == "failing-request-1"
    [error] = [record for record in caplog.records if record.name == "app.access"]
    assert error.levelno == logging.ERROR
    assert error.exc_info is not None
    assert getattr(error, "request_id", None) == "failing-request-1"
    assert getattr(error, "route", None) == "/api/test-observability-boom"
