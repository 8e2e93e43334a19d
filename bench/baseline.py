"""The benchmark's baseline: a raw ASGI app (no framework) doing the app's database
work for `GET /api/items/` and `GET /api/users/me`, plus a constant JSON answer.

What the app does per request, and nothing more: verify the HS256 access token
(pyjwt: pinned algorithm, `iss`, `aud`, every claim required), one query for "the
active user with a live session", with their roles' permissions
(app/auth/service.py user_from_access_token), and
for the list a page of 20 (and one more, which tells whether a next page
follows) sorted by `-created_at` then `-id`, a count bounded by
LIST_EXACT_TOTAL_LIMIT when the page does not count itself, and the next page's
cursor (app/services/items.py, paging.py, cursors.py), through a psycopg async
pool of autocommit connections; the JSON has the shape of the app's
`Page[ItemOut]` and `UserOut`.
It is what the app's framework, ORM and validation cost is measured against.

Run like the app: `gunicorn bench.baseline:app --bind ...` (gunicorn.conf.py: the
same uvicorn workers), configured by the app's environment variables.
"""

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import jwt
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ALGORITHM = "HS256"
SESSION_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud", "type", "sid"]
MAX_PAGE_SIZE = 100

CURRENT_USER = """
SELECT users.id, users.email, users.full_name, users.hashed_password, users.is_active,
       users.is_superuser, users.session_epoch, users.is_verified, users.created_at,
       array(SELECT unnest(roles.permissions) FROM user_roles
             JOIN roles ON roles.id = user_roles.role_id
             WHERE user_roles.user_id = users.id) AS role_permissions
FROM users JOIN auth_sessions ON auth_sessions.user_id = users.id
WHERE users.id = %s AND users.is_active IS true
  AND auth_sessions.id = %s AND auth_sessions.revoked_at IS NULL
"""
COUNT_ITEMS = """
SELECT count(*) FROM (SELECT 1 FROM items WHERE items.owner_id = %s LIMIT %s) AS matches
"""
ESTIMATE_ITEMS = "EXPLAIN (FORMAT JSON) SELECT 1 FROM items WHERE items.owner_id = %s"
PAGE_OF_ITEMS = """
SELECT id, owner_id, name, description, price, tax, tags, image, created_at, updated_at
FROM items WHERE items.owner_id = %s
ORDER BY items.created_at DESC, items.id DESC LIMIT %s
"""
ITEMS_CURSOR_VERSION = 1

CONSTANT = json.dumps({"status": "ok"}).encode()
JSON_HEADERS = [(b"content-type", b"application/json")]


class NotAuthenticated(Exception):
    """No token, a bad one, or no live session behind it: a 401, as in the app."""


def _env(name: str, default: str) -> str:
    # As the app's settings: an empty variable counts as unset.
    return os.environ.get(name) or default


class Baseline:
    def __init__(self) -> None:
        host, _, port = _env("POSTGRES_URL", "localhost:5432").rpartition(":")
        if not host:  # no port given
            host, port = port, "5432"
        conninfo = make_conninfo(
            host=host,
            port=port,
            user=_env("POSTGRES_USER", "app"),
            password=_env("POSTGRES_PW", ""),
            dbname=_env("POSTGRES_DB", "app"),
        )
        # Sized like the app's read pool, which serves the same requests.
        pool_size = int(_env("DB_READ_POOL_SIZE", "10"))
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            min_size=pool_size,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=False,
        )
        self.exact_total_limit = int(_env("LIST_EXACT_TOTAL_LIMIT", "10000"))
        self.secret = _env("SECRET_KEY", "")
        self.issuer = _env("JWT_ISSUER", "fastapi-stack")
        self.audience = _env("JWT_AUDIENCE", "fastapi-stack-api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if method == "GET" and path == "/api/constant":
                await _respond(send, 200, CONSTANT)
            elif method == "GET" and path == "/api/items/":
                await _respond(send, 200, await self._items(scope))
            elif method == "GET" and path == "/api/users/me":
                await _respond(send, 200, await self._me(scope))
            else:
                await _respond(send, 404, b'{"detail":"Not Found"}')
        except NotAuthenticated:
            await _respond(
                send,
                401,
                b'{"detail":"Could not validate credentials"}',
                [(b"www-authenticate", b"Bearer")],
            )
        except ValueError:
            await _respond(send, 422, b'{"detail":"Invalid query parameters"}')

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.pool.open(wait=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _claims(self, scope: Scope) -> tuple[int, uuid.UUID]:
        try:
            payload = jwt.decode(
                _bearer_token(scope),
                self.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": SESSION_CLAIMS},
            )
            if payload["type"] != "access":
                raise NotAuthenticated()
            return int(payload["sub"]), uuid.UUID(payload["sid"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            raise NotAuthenticated() from exc

    async def _me(self, scope: Scope) -> bytes:
        user_id, session_id = self._claims(scope)
        async with self.pool.connection() as connection:
            user = await (await connection.execute(CURRENT_USER, (user_id, session_id))).fetchone()
        if user is None:
            raise NotAuthenticated()
        return json.dumps(_user_out(user)).encode()

    async def _items(self, scope: Scope) -> bytes:
        user_id, session_id = self._claims(scope)
        limit = _page_size(scope["query_string"])
        async with self.pool.connection() as connection:
            user = await (await connection.execute(CURRENT_USER, (user_id, session_id))).fetchone()
            if user is None:
                raise NotAuthenticated()
            rows = await (await connection.execute(PAGE_OF_ITEMS, (user_id, limit + 1))).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            total, exact = len(rows), True
            if more:
                bound = self.exact_total_limit
                counted = await (
                    await connection.execute(COUNT_ITEMS, (user_id, bound + 1))
                ).fetchone()
                assert counted is not None
                total = counted[0]
                if total > bound:
                    explained = await (
                        await connection.execute(ESTIMATE_ITEMS, (user_id,))
                    ).fetchone()
                    assert explained is not None
                    total, exact = max(total, explained[0][0]["Plan"]["Plan Rows"]), False
        page = {
            "items": [_item_out(row) for row in rows],
            "total": total,
            "total_exact": exact,
            "limit": limit,
            "offset": 0,
            "next": _items_cursor(user_id, rows[-1]) if more else None,
        }
        return json.dumps(page).encode()


def _bearer_token(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token
    raise NotAuthenticated()


def _page_size(query_string: bytes) -> int:
    """The first page only: what the benchmark asks for."""
    query = parse_qs(query_string.decode("latin-1"))
    limit = int(query.get("limit", ["20"])[0])
    if not 1 <= limit <= MAX_PAGE_SIZE or set(query) - {"limit"}:
        raise ValueError("limit out of range, or a parameter the baseline does not serve")
    return limit


def _items_cursor(owner_id: int, last: TupleRow) -> str:
    """The cursor the app gives the default sort of a user's items: the last row's
    sort key and id, and the list's fingerprint (app/services/cursors.py)."""
    canonical = json.dumps(
        ["items", "-created_at", [["owner_id", owner_id]]], separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode()).digest()[:12]
    fingerprint = base64.urlsafe_b64encode(digest).decode()
    item_id, created_at = last[0], last[8]
    payload = [ITEMS_CURSOR_VERSION, fingerprint, created_at.isoformat(), item_id]
    encoded = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(encoded).decode().rstrip("=")


def _timestamp(moment: datetime) -> str:
    # pydantic writes UTC as `Z`.
    return moment.isoformat().replace("+00:00", "Z")


def _user_out(row: TupleRow) -> dict[str, Any]:
    user_id, email, full_name, _hash, is_active, is_superuser, _epoch, verified, created_at, _ = row
    return {
        "id": user_id,
        "email": email,
        "full_name": full_name,
        "is_active": is_active,
        "is_superuser": is_superuser,
        "is_verified": verified,
        "created_at": _timestamp(created_at),
    }


def _item_out(row: TupleRow) -> dict[str, Any]:
    item_id, owner_id, name, description, price, tax, tags, image, created, updated = row
    total: Decimal = price + (tax or Decimal(0))
    return {
        "id": item_id,
        "owner_id": owner_id,
        "name": name,
        "description": description,
        "price": float(price),
        "tax": None if tax is None else float(tax),
        "tags": tags,
        "image": None if image is None else {"url": image["url"], "name": image["name"]},
        "created_at": _timestamp(created),
        "updated_at": _timestamp(updated),
        "total": float(total),
    }


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = Baseline()
