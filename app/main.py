"""The FastAPI application. `python -m app.main` runs a reloading dev server
(devtools/devserver.py, in a clone; `make dev`)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from app.auth import oidc
from app.auth.cookie_routes import cookie_router, document_cookie_auth
from app.auth.oidc_routes import router as oidc_router
from app.auth.passkey_routes import router as passkey_router
from app.auth.routes import auth_router, token_router
from app.config import Settings, get_settings
from app.database.db import ConnectionHealth, create_engine, create_session_factory
from app.database.reads import ReadPool
from app.docs import add_docs
from app.exceptions import (
    MalformedBody,
    PayloadTooLarge,
    ServiceUnavailable,
    error_responses,
    register_exception_handlers,
)
from app.mail.outbox import mail_sender
from app.middleware import LimitRequestBody, NoStore
from app.observability.logs import configure_logging
from app.observability.requests import ObserveRequests
from app.observability.sampler import sampling
from app.routes import (
    account_mail,
    audit,
    health,
    items,
    pages,
    roles,
    second_factor,
    users,
    wellknown,
)
from app.services.account_mail import compose as compose_account_mail
from app.services.maintenance import periodic_sweeps

# The token and auth routes: no answer of theirs is cached, errors included.
NO_STORE_PREFIXES = ("/api/auth/", "/api/token/")

DESCRIPTION = """
Users own **items**; every request after login carries a bearer token.

1. `POST /api/auth/register` — creates the account and answers with a token pair.
2. `POST /api/token/` — logs in (OAuth2 password form or JSON); the **Authorize**
   button above uses it: your email is the *username*.
3. `POST /api/token/refresh` — when the access token expires, trade the refresh
   token for a new pair. Each refresh token works **once**.

A browser app on this API's site may keep its session in cookies instead:
`POST /api/auth/cookie/login` sets them (HttpOnly) and answers a CSRF token to
send as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE.

Errors are JSON with a `detail`: a sentence for domain errors, a list of issues
for `422`.
"""

MALFORMED_BODY_RESPONSE = {
    "description": MalformedBody.detail,
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorDetail"},
            "example": {"detail": MalformedBody.detail},
        }
    },
}
VALIDATION_ERROR_RESPONSE = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}

TAGS = [
    {"name": "auth", "description": "Register, log in, rotate and revoke tokens."},
    {"name": "users", "description": "Your account; managing all accounts (admin)."},
    {"name": "roles", "description": "Permissions, and the roles that grant them."},
    {"name": "items", "description": "Your items: price, tax, tags, an image."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.tracing:  # here, in each worker: its exporter has a thread
        from app.observability.tracing import start_tracing

        start_tracing(settings)
    # One view of the database's health for both pools (see ConnectionHealth).
    health = ConnectionHealth()
    engine = create_engine(app.state.settings, health)
    reader = ReadPool(app.state.settings, health)
    app.state.engine = engine
    app.state.reader = reader
    app.state.session_factory = create_session_factory(engine)
    await reader.open()
    try:
        async with (
            periodic_sweeps(
                session_factory=app.state.session_factory, settings=app.state.settings
            ) as sweeper,
            mail_sender(
                session_factory=app.state.session_factory,
                settings=app.state.settings,
                compose=compose_account_mail,
            ) as mailer,
            sampling(
                engine=engine, reader=reader, settings=settings, on=bool(settings.METRICS_PORT)
            ),
        ):
            app.state.oidc = oidc.Providers.from_settings(app.state.settings)
            app.state.sweeper = sweeper
            app.state.mailer = mailer
            try:
                yield
            finally:
                await app.state.oidc.aclose()
    finally:
        await reader.close()
        await engine.dispose()


# FastAPI tries the routes one by one, in the order included, on every request:
# the busiest first (the items and the current user: ~12 % of a list's CPU time,
# measured). No route shadows another's paths (tests/test_route_order.py), so the
# order decides nothing else; /docs groups by TAGS whatever the order.
ROUTERS: tuple[APIRouter, ...] = (
    items.router,
    users.router,
    auth_router,
    token_router,
    cookie_router,
    oidc_router,
    passkey_router,
    second_factor.router,
    roles.permissions_router,
    roles.router,
    audit.router,
    health.router,
    wellknown.router,
    account_mail.router,
    account_mail.pages_router,
    pages.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(level=settings.LOG_LEVEL, log_format=settings.log_format)
    app = FastAPI(
        title=settings.PROJECT_NAME,
        description=DESCRIPTION,
        version="1.0.0",
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_parameters={"persistAuthorization": True},
        # Any route may meet an overloaded pool or a database that is down, and
        # any request may carry a body over the limit.
        responses=error_responses(ServiceUnavailable, PayloadTooLarge),
    )
    app.state.settings = settings
    # Added first, so CORS (added after, hence outside it) can label its 413.
    app.add_middleware(LimitRequestBody, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    # Outside the limit: its 413 on a token or auth route is not cached either.
    app.add_middleware(NoStore, prefixes=NO_STORE_PREFIXES)
    if settings.BACKEND_CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.BACKEND_CORS_ORIGINS,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    register_exception_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    observe_requests(app, settings)
    add_docs(app)
    document_body_errors(app)
    document_cookie_auth(app)
    build_routes(app)
    return app


def observe_requests(app: FastAPI, settings: Settings) -> None:
    """ObserveRequests wraps the whole middleware stack, Starlette's error handling
    included, so that a 500 too gets its request id, its count and its log line."""
    build = app.build_middleware_stack

    def build_observed() -> ASGIApp:
        return ObserveRequests(
            build(), record_metrics=bool(settings.METRICS_PORT), access_log=settings.access_log
        )

    app.build_middleware_stack = build_observed  # type: ignore[method-assign]


def build_routes(app: FastAPI) -> None:
    """FastAPI builds an included router's routes (dependencies, validators,
    response fields) when the first request reaches it, in each worker. Built
    here, they are built once in the master that preloads the app
    (gunicorn.conf.py) and shared by its workers: ~3 MB less per worker. This
    walks FastAPI internals; should they change, it builds nothing and each
    worker builds its own again, as before (`make bench` would show it)."""

    def build(router: Any) -> None:
        for child in router.effective_candidates():
            if hasattr(child, "effective_candidates"):
                build(child)
        router.effective_low_priority_routes()

    for route in app.router.routes:
        if hasattr(route, "effective_candidates") and hasattr(
            route, "effective_low_priority_routes"
        ):
            build(route)


def document_body_errors(app: FastAPI) -> None:
    """Every operation that reads a body can answer 400 (FastAPI's answer to a body
    it cannot decode: not UTF-8, nested too deep) and 422; FastAPI documents the
    422 only where it parses the body itself, not for `/api/token/`'s own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        for operations in schema["paths"].values():
            for operation in operations.values():
                if "requestBody" in operation:
                    responses = operation["responses"]
                    responses.setdefault("400", MALFORMED_BODY_RESPONSE)
                    responses.setdefault("422", VALIDATION_ERROR_RESPONSE)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()


if __name__ == "__main__":
    try:
        from devtools.devserver import run
    except ImportError:  # the image holds app/ only
        raise SystemExit("the dev server is in devtools/: run `make dev` in a clone") from None
    run()
