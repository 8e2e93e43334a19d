"""Traces, with the SDK's in-memory exporter in place of OTLP: a login's spans (the
throttle's statements, the password hash, the session insert) under the request's
server span, whose trace id is the request id when Traefik's traceparent came
from the trusted proxy."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.config import Settings
from app.observability.proxy import behind_proxy
from app.observability.tracing import install_tracing
from tests.conftest import PASSWORD, app_with, register

TRAEFIK = "198.18.200.2"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"

EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans(settings: Settings) -> Iterator[InMemorySpanExporter]:
    # One global provider a process: installed once, for the rest of the session.
    install_tracing(settings, SimpleSpanProcessor(EXPORTER))
    EXPORTER.clear()
    yield EXPORTER
    # The provider stays for the session: later spans are dropped, not kept.
    EXPORTER.shutdown()


async def test_a_logins_spans_are_under_its_request_span(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    # A new app: its pools open their connections after psycopg is instrumented.
    async with app_with(settings) as app:
        await login_through_traefik(app)
    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    [server] = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /api/token/"]
    assert server.context is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    under = [
        s
        for s in finished
        if s.context is not None and s.context.trace_id == server.context.trace_id
    ]
    names = [s.name for s in under]
    statements = " ".join(str(s.attributes.get("db.statement", "")) for s in under if s.attributes)
    assert "password hash" in names
    assert "login_failure" in statements, "the throttle's statements"
    assert "INSERT INTO auth_session" in statements, "the session's insert"


async def login_through_traefik(app: FastAPI) -> None:
    served: Any = behind_proxy(app, "198.18.200.0/24")
    transport = httpx.ASGITransport(app=served, client=(TRAEFIK, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        await register(http, email="traced@example.com")
        answer = await http.post(
            "/api/token/",
            data={"username": "traced@example.com", "password": PASSWORD},
            headers={"traceparent": TRACEPARENT},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-Id"] == TRACE_ID
