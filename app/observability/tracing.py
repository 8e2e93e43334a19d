"""OpenTelemetry traces, on when OTEL_EXPORTER_OTLP_ENDPOINT is set.

FastAPI (0.16x) traces requests itself once a tracer provider is installed: a
server span per request, named by its route, continuing the `traceparent` it was
sent (Traefik's). Here: that provider, exporting over OTLP/HTTP, and psycopg's
instrumentation (every statement of both pools, under the request's span). The
app adds its own spans where no library does: the password hash, the SMTP send.

The SDK is imported here only, and only when tracing is on: off, it costs no
memory (tests/test_preloaded_workers.py). Started in each worker by the lifespan,
after the fork: the batch processor exports from a thread of its own."""

import logging
from typing import TYPE_CHECKING

from app.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

logger = logging.getLogger(__name__)

_installed = False


def start_tracing(settings: Settings) -> None:
    """Tracing for this process, exported to the configured endpoint; once."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    install_tracing(settings, BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    logger.info("traces go to %s", endpoint)


def install_tracing(settings: Settings, processor: "SpanProcessor") -> None:
    """The global tracer provider with `processor`, and psycopg instrumented. A
    process has one global provider: a second call adds nothing."""
    global _installed
    if _installed:
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME})
    )
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    # Before the pools open their first connection: only connections opened after
    # this are traced.
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    _installed = True
