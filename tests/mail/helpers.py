"""What the mail tests share: an app wired to the test SMTP server, raw reads of
the outbox and the tokens."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.config import Settings
from tests.conftest import CLIENT_ADDRESS, app_with, client_at
from tests.mail.smtp_server import SmtpServer, settings_for


@asynccontextmanager
async def mail_app(
    settings: Settings, server: SmtpServer, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app whose sender delivers to `server`, and a client of it."""
    async with (
        app_with(settings, **settings_for(server, **overrides)) as application,
        client_at(application, CLIENT_ADDRESS) as http,
    ):
        yield application, http


async def rows(app: FastAPI, sql: str, **values: Any) -> list[dict[str, Any]]:
    async with app.state.engine.connect() as connection:
        result = await connection.execute(text(sql), values)
        return [dict(row._mapping) for row in result]


async def execute(app: FastAPI, sql: str, **values: Any) -> None:
    async with app.state.engine.begin() as connection:
        await connection.execute(text(sql), values)


async def outbox(app: FastAPI) -> list[dict[str, Any]]:
    return await rows(app, "SELECT * FROM mail_outbox ORDER BY id")
