"""The client address a session records (and the login throttle counts by) is the
real one behind Traefik, and a client cannot choose it: uvicorn takes it from
X-Forwarded-For only when the peer is a trusted proxy (gunicorn.conf.py's
`forwarded_allow_ips`, from FORWARDED_ALLOW_IPS, which compose sets to the proxy
network's subnet). Here the app is wrapped exactly as uvicorn's worker wraps it."""

import re
import runpy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tests.conftest import CLIENT_ADDRESS, bearer, register

ROOT = Path(__file__).resolve().parents[2]
# Documentation addresses: a client's own, and one it would like to be seen as.
REAL_CLIENT = "192.0.2.44"
SPOOFED = "203.0.113.250"


def proxy_subnet() -> str:
    """The subnet compose gives the proxy network and trusts forwarded headers from."""
    found = re.search(r"^PROXY_SUBNET='([^']+)'", (ROOT / ".env.example").read_text(), re.M)
    assert found is not None
    return found.group(1)


def traefik_address() -> str:
    """An address inside that subnet, as Traefik's container has."""
    return proxy_subnet().rsplit(".", 1)[0] + ".2"


def gunicorn_forwarded_allow_ips(monkeypatch: pytest.MonkeyPatch) -> str:
    """What gunicorn.conf.py hands uvicorn's worker in the container (compose.yaml
    sets FORWARDED_ALLOW_IPS to PROXY_SUBNET)."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", proxy_subnet())
    allowed: str = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["forwarded_allow_ips"]
    return allowed


@asynccontextmanager
async def served_by_uvicorn(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, peer: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app as uvicorn serves it in the image: uvicorn_worker builds
    uvicorn's Config with gunicorn's forwarded_allow_ips, and Config.load() wraps
    the app in its ProxyHeadersMiddleware. `peer` is the TCP peer's address."""
    config = uvicorn.Config(
        app,
        forwarded_allow_ips=gunicorn_forwarded_allow_ips(monkeypatch),
        log_config=None,
        lifespan="off",  # the `app` fixture's lifespan is already running
    )
    config.load()
    assert isinstance(config.loaded_app, ProxyHeadersMiddleware)
    served: Any = config.loaded_app  # uvicorn's ASGI types are narrower than httpx's
    transport = httpx.ASGITransport(app=served, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


async def recorded_address(http: httpx.AsyncClient, forwarded_for: str) -> str:
    """Register with the header, and read back the address the session recorded."""
    http.headers["X-Forwarded-For"] = forwarded_for
    pair = await register(http)
    listed = await http.get("/api/auth/sessions", headers=bearer(pair["access_token"]))
    [session] = listed.json()
    address: str = session["client_address"]
    return address


async def test_a_clients_x_forwarded_for_is_not_believed(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_by_uvicorn(app, monkeypatch, peer=CLIENT_ADDRESS) as http:
        assert await recorded_address(http, SPOOFED) == CLIENT_ADDRESS


async def test_x_forwarded_for_is_ignored_by_the_app_itself(client: httpx.AsyncClient) -> None:
    """Without uvicorn's middleware (any other server) the header counts for nothing."""
    assert await recorded_address(client, SPOOFED) == CLIENT_ADDRESS


async def test_the_proxys_x_forwarded_for_is_believed(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_by_uvicorn(app, monkeypatch, peer=traefik_address()) as http:
        assert await recorded_address(http, REAL_CLIENT) == REAL_CLIENT


async def test_an_address_a_client_prepends_before_the_proxys_is_not_believed(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client sends `X-Forwarded-For: <spoofed>`; Traefik appends the address it
    saw. The nearest untrusted hop, the real client, is the one recorded."""
    async with served_by_uvicorn(app, monkeypatch, peer=traefik_address()) as http:
        assert await recorded_address(http, f"{SPOOFED}, {REAL_CLIENT}") == REAL_CLIENT
