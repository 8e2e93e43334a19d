"""A login flood: no connection held across bcrypt, a fast 503 past the hashing
queue, never a 500, and authenticated reads keep being served."""

import asyncio
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import PASSWORD, app_with, bearer, client_at, me, register
from tests.security.pause import PausedPasswordCheck

FLOOD = 60


async def test_no_database_connection_is_held_while_a_password_is_checked(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(client)
    paused = PausedPasswordCheck(monkeypatch)
    login = asyncio.create_task(
        client.post("/api/token/", data={"username": "ada@example.com", "password": PASSWORD})
    )
    await paused.wait_until_entered()
    checked_out = app.state.engine.pool.checkedout()
    paused.release.set()
    assert (await login).status_code == 200
    assert checked_out == 0


async def test_a_login_flood_gets_401_or_a_503_with_retry_after_and_reads_are_served(
    app: FastAPI, settings: Settings
) -> None:
    # Production's bcrypt cost, a pool of four connections, one hashing thread and
    # a queue of four: the flood outnumbers everything, as 300 logins would on the
    # real defaults. Holding a connection across bcrypt, 60 checks of ~0.25 s
    # would outlast the 3 s pool timeout.
    async with (
        app_with(
            settings,
            DB_POOL_SIZE=4,
            DB_MAX_OVERFLOW=0,
            DB_POOL_TIMEOUT=3.0,
            BCRYPT_ROUNDS=12,
            PASSWORD_HASH_THREADS=1,
            PASSWORD_HASH_QUEUE=4,
        ) as small,
        client_at(small, "203.0.113.10") as http,
    ):
        user = await register(http)
        token = user["access_token"]
        flood = [
            http.post(
                "/api/token/",
                data={"username": f"nobody{number}@example.com", "password": "wrong password"},
            )
            for number in range(FLOOD)
        ]
        reads = [me(http, token) for _ in range(20)]
        answers = await asyncio.gather(*flood, *reads)
        after = await http.get("/api/users/me", headers=bearer(token))

    logins, served = answers[:FLOOD], answers[FLOOD:]
    statuses = Counter(response.status_code for response in logins)
    assert set(statuses) <= {401, 503}, statuses
    assert statuses[503] > 0, "the flood never filled the hashing queue"
    assert all(
        response.headers.get("Retry-After") == "1"
        for response in logins
        if response.status_code == 503
    )
    assert [response.status_code for response in served] == [200] * len(served)
    assert after.status_code == 200
