"""Attacks on the key ids and keys (app/signing_keys.py, app/auth/tokens.py), with
HS256 and with EdDSA: an injected `kid`, keys the token carries itself (`jwk`,
`jku`, `x5u`), algorithm confusion with the public key, `alg: none`, and the
published key set leaking private material. Every forged token gets the one 401
of any invalid token and touches nothing: no row, no statement, no file, no URL."""

import json
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import event

from app.config import Settings
from app.database.reads import ReadPool
from app.signing_keys import hmac_kid, jwk_thumbprint, okp_members
from tests.auth.keys import (
    NEW_SECRET,
    OLD_SECRET,
    ed25519_key,
    eddsa,
    hs256,
    private_pem,
    public_pem,
    public_raw,
)
from tests.conftest import CLIENT_ADDRESS, app_with, bearer, client_at, register
from tests.security.forge import ANOTHER_KEY, b64url, claims_of, forge, hmac_signed, unsigned
from tests.security.surface import snapshot

REFUSED = (401, "Bearer", {"detail": "Could not validate credentials"})
KEY = ed25519_key("attacks: the app's key")
RETIRED = ed25519_key("attacks: the app's retired key")
ATTACKER = ed25519_key("attacks: the attacker's key")


@dataclass
class Deployment:
    """An app signing as `mode` says, and a user's genuine pair from it."""

    mode: str
    app: FastAPI
    http: httpx.AsyncClient
    pair: dict[str, Any]

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    @property
    def claims(self) -> dict[str, Any]:
        return claims_of(self.pair["access_token"])

    @property
    def kid(self) -> str:
        kid: str = jwt.get_unverified_header(self.pair["access_token"])["kid"]
        return kid


OVERRIDES = {
    "HS256": hs256(NEW_SECRET, OLD_SECRET),
    "EdDSA": eddsa(KEY, RETIRED, SECRET_KEY_PREVIOUS=[SecretStr(OLD_SECRET)]),
}


@asynccontextmanager
async def deployed(settings: Settings, mode: str, **more: Any) -> AsyncIterator[Deployment]:
    async with (
        app_with(settings, **OVERRIDES[mode], **more) as app,
        client_at(app, CLIENT_ADDRESS) as http,
    ):
        # A user of its own: a test may deploy several on the same tables.
        yield Deployment(mode, app, http, await register(http, f"{uuid.uuid4().hex}@example.com"))


@pytest.fixture(params=list(OVERRIDES))
async def deployment(
    request: pytest.FixtureRequest, app: FastAPI, settings: Settings
) -> AsyncIterator[Deployment]:
    # `app`: the suite empties the tables after the test.
    async with deployed(settings, request.param) as signing:
        yield signing


def outcome(response: httpx.Response) -> tuple[int, str | None, Any]:
    return response.status_code, response.headers.get("WWW-Authenticate"), response.json()


async def outcomes_of(deployment: Deployment, token: str) -> list[tuple[int, str | None, Any]]:
    """Wherever a token is read: as a bearer, as the token to verify, as a refresh token."""
    http = deployment.http
    return [
        outcome(await http.get("/api/users/me", headers=bearer(token))),
        outcome(await http.post("/api/token/verify", json={"token": token})),
        outcome(await http.post("/api/token/refresh", json={"refresh_token": token})),
    ]


# Files opened while recording, seen through Python's audit hooks (open(),
# os.open, io.open all raise the `open` event). A hook cannot be removed, so one
# is added once and records only inside `files_opened()`.
_recording: list[str] | None = None
_hooked = False


def _record_open(event_name: str, args: tuple[Any, ...]) -> None:
    if event_name == "open" and _recording is not None:
        _recording.append(str(args[0]))


@contextmanager
def files_opened() -> Iterator[list[str]]:
    global _recording, _hooked
    if not _hooked:
        sys.addaudithook(_record_open)
        _hooked = True
    opened: list[str] = []
    _recording = opened
    try:
        yield opened
    finally:
        _recording = None


@dataclass
class Touched:
    statements: int = 0
    reads: int = 0
    files: list[str] = field(default_factory=list)


@asynccontextmanager
async def nothing_touched(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """No statement through either pool, no file opened, no row changed."""
    before = await snapshot(app)
    touched = Touched()

    def count_statement(*_: Any) -> None:
        touched.statements += 1

    reader: ReadPool = app.state.reader
    real_connection = reader.connection

    def counting_connection() -> Any:
        touched.reads += 1
        return real_connection()

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count_statement)
    try:
        with monkeypatch.context() as patch, files_opened() as opened:
            patch.setattr(reader, "connection", counting_connection)
            yield
            touched.files = list(opened)
    finally:
        event.remove(engine, "before_cursor_execute", count_statement)
    assert touched == Touched()
    assert await snapshot(app) == before


INJECTED_KIDS: dict[str, Any] = {
    "path traversal": "../../../../../../etc/passwd",
    "absolute path": "/dev/zero",
    "file URL": "file:///etc/passwd",
    "URL": "https://attacker.example/key",
    "SQL": "' OR 1=1--",
    "SQL stacked": "x'; DROP TABLE users; --",
    "NUL": "\x00",
    "format string": "%s%s%s%n",
    "very long": "k" * 10_000,
    "empty": "",
    "null": None,
    "number": 1,
    "boolean": True,
    "list": ["kid"],
    "object": {"$ne": ""},
    "unknown HMAC key id": hmac_kid(ANOTHER_KEY),
    "unknown thumbprint": jwk_thumbprint(ATTACKER.public_key()),
}


def near_misses(genuine_kid: str) -> dict[str, str]:
    return {
        "genuine kid upper-cased": genuine_kid.upper(),
        "genuine kid with a space": genuine_kid + " ",
        "genuine kid truncated": genuine_kid[:-1],
    }


async def test_an_injected_or_unknown_kid_is_401_and_touches_nothing(
    app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed with the real key (HS256), only the kid is wrong: the kid is looked up
    in the key ring, never used as a path, a URL or in a query."""
    async with deployed(settings, "HS256") as target:
        header = {"alg": "HS256", "typ": "JWT"}
        kids = {**INJECTED_KIDS, **near_misses(target.kid)}
        forged = {
            name: hmac_signed(target.claims, {**header, "kid": kid}, NEW_SECRET)
            for name, kid in kids.items()
        }
        control = hmac_signed(target.claims, {**header, "kid": target.kid}, NEW_SECRET)
        assert (await target.http.get("/api/users/me", headers=bearer(control))).status_code == 200
        await outcomes_of(target, forged["SQL"])  # warms up: lazy imports open files
        async with nothing_touched(target.app, monkeypatch):
            results = {name: await outcomes_of(target, token) for name, token in forged.items()}
    assert results == dict.fromkeys(forged, [REFUSED] * 3)


def attacker_jwk() -> dict[str, str]:
    return {**okp_members(ATTACKER.public_key()), "kid": jwk_thumbprint(ATTACKER.public_key())}


class KeyServer:
    """An attacker's web server offering its key set; counts every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"keys": [attacker_jwk()]}).encode())

            def log_message(self, *_: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_port}/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> "KeyServer":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.shutdown()
        self._http.server_close()


async def test_a_key_the_token_carries_or_points_at_is_ignored(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed with the attacker's key, which the token embeds (`jwk`) or points at
    (`jku`, `x5u`): refused, and the URL is never fetched."""
    own_kid = jwk_thumbprint(ATTACKER.public_key())
    attacker = private_pem(ATTACKER)
    with KeyServer() as keys:
        carried = {"jwk": attacker_jwk(), "jku": keys.url, "x5u": keys.url}
        forged = {
            f"{name}, kid {which}": forge(
                deployment.claims,
                key=attacker,
                algorithm="EdDSA",
                kid=kid,
                headers={name: value},
            )
            for name, value in carried.items()
            for which, kid in (("of the attacker's key", own_kid), ("genuine", deployment.kid))
        }
        forged["jwk of an HMAC key"] = forge(
            deployment.claims,
            key=ANOTHER_KEY,
            kid=hmac_kid(ANOTHER_KEY),
            headers={"jwk": {"kty": "oct", "k": b64url(ANOTHER_KEY.encode())}},
        )
        await outcomes_of(deployment, forged["jwk of an HMAC key"])  # warms up
        async with nothing_touched(deployment.app, monkeypatch):
            results = {name: await outcomes_of(deployment, token) for name, token in forged.items()}
        assert keys.requests == []
    assert results == dict.fromkeys(forged, [REFUSED] * 3)


async def test_an_hs256_token_signed_with_the_public_key_is_refused(
    app: FastAPI, settings: Settings
) -> None:
    """Algorithm confusion: in an EdDSA setup, the public key (anyone can fetch it
    from the JWKS) used as an HMAC secret, in every form, under the genuine kid or
    none, even while kid-less tokens are accepted."""
    public = public_pem(KEY)
    secrets: dict[str, bytes] = {
        "PEM": public.encode(),
        "PEM without the final newline": public.strip().encode(),
        "raw 32 bytes": public_raw(KEY),
        "JWK x": okp_members(KEY.public_key())["x"].encode(),
    }
    for require_kid in (True, False):
        async with deployed(settings, "EdDSA", JWT_REQUIRE_KID=require_kid) as target:
            forged = {
                f"{name}, {kid or 'no kid'}": hmac_signed(
                    target.claims,
                    {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})},
                    secret,
                )
                for name, secret in secrets.items()
                for kid in (target.kid, None)
            }
            results = {name: await outcomes_of(target, token) for name, token in forged.items()}
            assert results == dict.fromkeys(forged, [REFUSED] * 3), require_kid
            # The control: the genuine token passes this very app.
            genuine = bearer(target.pair["access_token"])
            assert (await target.http.get("/api/users/me", headers=genuine)).status_code == 200


@pytest.mark.parametrize("require_kid", [True, False], ids=["kid required", "kid-less accepted"])
async def test_alg_none_is_refused(app: FastAPI, settings: Settings, require_kid: bool) -> None:
    for mode in OVERRIDES:
        async with deployed(settings, mode, JWT_REQUIRE_KID=require_kid) as target:
            forged = {
                f"{alg}, {kid or 'no kid'}": unsigned(target.claims, alg=alg, kid=kid)
                for alg in ("none", "None", "NONE", "nOnE")
                for kid in (target.kid, None)
            }
            results = {name: await outcomes_of(target, token) for name, token in forged.items()}
            assert results == dict.fromkeys(forged, [REFUSED] * 3), mode


async def test_the_jwks_never_holds_private_material_nor_a_secret(
    deployment: Deployment,
) -> None:
    response = await deployment.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == (2 if deployment.mode == "EdDSA" else 0)
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert (key["kty"], key["use"]) == ("OKP", "sig")
    private_scalar = KEY.private_bytes_raw()
    for secret in (
        NEW_SECRET,
        OLD_SECRET,
        deployment.settings.SECRET_KEY.get_secret_value(),
        b64url(private_scalar),
        b64url(NEW_SECRET.encode()),
        b64url(OLD_SECRET.encode()),
        *private_pem(KEY).splitlines()[1:-1],
    ):
        assert secret not in response.text
    assert '"d"' not in response.text
    assert '"k"' not in response.text
