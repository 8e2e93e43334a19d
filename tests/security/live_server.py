"""The app served over real HTTP on 127.0.0.1 (uvicorn in a thread, its own event
loop and pool) against the suite's Postgres, for tools that speak HTTP
synchronously: Schemathesis and the Hypothesis property tests."""

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, create_engine, text

from app.config import Settings
from devtools.embedded_postgres import free_port
from tests.conftest import PASSWORD, TABLES, TEST_SECRET_KEY

STARTUP_TIMEOUT = 15.0
_emails = itertools.count()


@dataclass(frozen=True)
class Account:
    """A fresh account and the token pair it registered with."""

    id: int
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    database: Engine

    def register(self, http: httpx.Client, *, admin: bool = False) -> Account:
        email = f"live{next(_emails)}@example.com"
        response = http.post(
            f"{self.base_url}/api/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        if admin:
            # The flag is read from the row on every request: no new login needed.
            with self.database.begin() as connection:
                connection.execute(
                    text("UPDATE users SET is_superuser = true WHERE id = :id"),
                    {"id": body["user"]["id"]},
                )
        return Account(body["user"]["id"], email, body["access_token"], body["refresh_token"])

    def empty_tables(self) -> None:
        with self.database.begin() as connection:
            connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


@contextmanager
def serve(settings: Settings) -> Iterator[LiveServer]:
    from app.main import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="live-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        assert thread.is_alive(), "the live server stopped while starting"
        assert time.monotonic() < deadline, "the live server did not start in time"
        time.sleep(0.05)
    database = create_engine(settings.database_url())
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", database=database)
    finally:
        database.dispose()
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the live server serves (the same code builds it), for
    tools that need it at collection time, before any server runs."""
    from app.main import create_app

    settings = Settings(_env_file=None, ENVIRONMENT="test", SECRET_KEY=TEST_SECRET_KEY)
    document: dict[str, Any] = create_app(settings).openapi()
    return document
