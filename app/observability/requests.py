"""The middleware that observes every request: gives it its id (in the log's
context and the `X-Request-Id` answer header), counts and times it by route
template for Prometheus, and writes its one access line.

It wraps the whole app, error handling included (app/main.py), so a 500 too has
its id, its count and its line."""

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import metrics
from app.observability.proxy import came_via_trusted_proxy
from app.observability.request_id import current_request_id, request_id_of

logger = logging.getLogger("app.access")

# Any path no route matches: one label, whatever the path (bounded cardinality).
UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "OTHER"


def route_template(scope: Scope) -> str:
    """The matched route's template (`/api/items/{item_id}`), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


class ObserveRequests:
    def __init__(self, app: ASGIApp, *, record_metrics: bool, access_log: bool) -> None:
        self.app = app
        self.record_metrics = record_metrics
        self.access_log = access_log
        # Each (route, method, status)'s counter and histogram, looked up once:
        # `labels()` builds and hashes its key on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(
            scope["headers"], via_trusted_proxy=came_via_trusted_proxy(scope)
        )
        token = current_request_id.set(request_id)
        header = (b"x-request-id", request_id.encode())
        status = 500  # unless an answer starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            self._done(scope, status, started, failed=True)
            # The id stays set: the server's own report of this error carries it too
            # (uvicorn runs each request in a task of its own).
            raise
        self._done(scope, status, started, failed=False)
        current_request_id.reset(token)

    def _done(self, scope: Scope, status: int, started: float, *, failed: bool) -> None:
        duration = time.perf_counter() - started
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        route = route_template(scope)
        if self.record_metrics:
            key = (route, method, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    metrics.REQUESTS.labels(route, method, str(status)),
                    metrics.REQUEST_DURATION.labels(route, method),
                )
            children[0].inc()
            children[1].observe(duration)
        if self.access_log or failed:
            client = scope.get("client")
            logger.log(
                logging.ERROR if failed else logging.INFO,
                "%s %s %d",
                method,
                route,
                status,
                exc_info=failed,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "client": client[0] if client else None,
                },
            )
