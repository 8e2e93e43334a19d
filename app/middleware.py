"""ASGI middleware of our own: the request body size limit, and `no-store` on
every answer of the token and auth routes."""

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.exceptions import PayloadTooLarge

MAX_LENGTH_DIGITS = 18


class LimitRequestBody:
    """Refuses a request body larger than `max_bytes` with a 413, whatever the
    client declares: a `Content-Length` over the limit is refused before anything
    is read, and a chunked body (or one that lies about its length) is read only up
    to the limit. A body within the limit is handed to the app as it came.

    Traefik enforces the same limit in the stack; this holds wherever the app runs.
    The app buffers every body it parses anyway, so reading it here first costs
    no more memory than the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_have_body(scope):
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending the whole body
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            digits = value.strip()
            if name == b"content-length" and digits.isdigit():
                # int() of thousands of digits is slow and refused: cap before converting.
                return int(digits) if len(digits) <= MAX_LENGTH_DIGITS else 10**MAX_LENGTH_DIGITS
        return 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"Request body too large: at most {self.max_bytes} bytes")
        # The rest of the body is never read: the server closes the connection.
        response = JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def _may_have_body(scope: Scope) -> bool:
    """A request carries a body only with `Content-Length` or `Transfer-Encoding`
    (RFC 9112 §6.3): the others (nearly every GET) pass through untouched."""
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body in one message, then whatever the server says next (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class NoStore:
    """Every answer under `prefixes` (each ending in `/`) carries `Cache-Control: no-store` and
    `Pragma: no-cache` (RFC 6749 §5.1), errors included: an exception handler
    builds a new response, which the routes' own `no_store` dependency never
    touched. Set at the ASGI level, so no answer of these paths escapes it
    (a 413, a 422, a 500)."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not f"{path}/".startswith(self.prefixes):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-store"
                headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_no_store)
