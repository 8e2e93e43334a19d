"""Connections the database drops under the app (a restart, a failover, an admin's
pg_terminate_backend) cost at most one 503, never a 500, and are not reused."""

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import me

KILL_THE_APPS_CONNECTIONS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)


async def test_connections_dropped_by_the_database_cost_at_most_one_503(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    # Several pooled connections, all in use a moment ago (no idle check is due).
    await asyncio.gather(*(me(client, token) for _ in range(5)))
    async with app.state.engine.connect() as connection:
        killed = await connection.scalar(KILL_THE_APPS_CONNECTIONS)
    assert killed >= 1
    answers = [await me(client, token) for _ in range(10)]
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {200, 503}, [answer.text for answer in answers]
    assert statuses.count(503) <= 1, statuses
    assert statuses[-1] == 200
