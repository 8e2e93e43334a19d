"""Connections the database drops under the app (a restart, a failover, an admin's
pg_terminate_backend) cost at most one 503, never a 500, and are not reused: in
either pool (reads, and the transactions' pool), whichever finds the loss first."""

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.database.db import IDLE_BEFORE_PING_SECONDS
from tests.conftest import create_item, me

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
    # The reads found the loss: the transactions' pool tests its connections too.
    # (create_item asserts the 201.)
    assert (await create_item(client, token, name="after the loss"))["name"] == "after the loss"


async def test_connections_dropped_while_idle_are_replaced_before_use(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """A database restart during a quiet spell costs no request: a connection idle
    for over IDLE_BEFORE_PING_SECONDS is tested before it is handed out."""
    token = user_tokens["access_token"]
    await asyncio.gather(*(me(client, token) for _ in range(5)))
    async with app.state.engine.connect() as connection:
        assert await connection.scalar(KILL_THE_APPS_CONNECTIONS) >= 1
    await asyncio.sleep(IDLE_BEFORE_PING_SECONDS + 0.2)
    statuses = [(await me(client, token)).status_code for _ in range(10)]
    assert statuses == [200] * 10
