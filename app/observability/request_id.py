"""One id per request, shared by Traefik's access log, the app's log and a trace.

Traefik traces every request (compose.yaml) and hands the app a W3C `traceparent`
whose trace id is the `TraceId` of its access log line: from the trusted proxy,
that trace id is the request's id. Else an `X-Request-Id` from the trusted proxy
(another proxy or an internal caller may set one); else a new one. The id is always
32 lower-case hex digits or a short token of a safe charset, so it can be written
into a log line or a header as it is."""

import re
import uuid
from contextvars import ContextVar

# The id of the request this task serves; "-" outside a request (start-up, the mail
# sender, the sweep). Set by app/observability/requests.py, read by every log line.
current_request_id: ContextVar[str] = ContextVar("request_id", default="-")

MAX_REQUEST_ID_LENGTH = 64
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{8,%d}" % MAX_REQUEST_ID_LENGTH)
# version 00, trace id, parent id, flags (W3C Trace Context); an all-zero id is invalid.
_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_INVALID_TRACE_ID = b"0" * 32
_INVALID_PARENT_ID = b"0" * 16


def trace_id_of(traceparent: bytes) -> str | None:
    """The trace id of a well-formed `traceparent`, else None."""
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None or found[1] == _INVALID_TRACE_ID or found[2] == _INVALID_PARENT_ID:
        return None
    return found[1].decode()


def request_id_of(headers: list[tuple[bytes, bytes]], *, via_trusted_proxy: bool) -> str:
    """The request's id: the trusted proxy's trace id, else its well-formed
    X-Request-Id, else a new one. Nothing from an untrusted peer is taken."""
    if via_trusted_proxy:
        given: bytes | None = None
        for name, value in headers:
            if name == b"traceparent":
                trace_id = trace_id_of(value)
                if trace_id is not None:
                    return trace_id
            elif name == b"x-request-id" and _SAFE_REQUEST_ID.fullmatch(value):
                given = value
        if given is not None:
            return given.decode()
    return uuid.uuid4().hex
