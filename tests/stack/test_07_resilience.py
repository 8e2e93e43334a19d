"""Data and service survive restarts; backups restore."""

import os
import re
import stat
import time
import uuid
from typing import Any

import httpx

from tests.stack.conftest import Stack, run, timed


def auth(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def create_item(stack: Stack, user: dict[str, Any], name: str) -> int:
    with stack.client() as client:
        response = client.post("/api/items/", json={"name": name, "price": 3}, headers=auth(user))
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


def item_names(stack: Stack, user: dict[str, Any]) -> set[str] | None:
    with stack.client() as client:
        response = client.get("/api/items/?limit=100", headers=auth(user))
    if response.status_code != 200:
        return None
    return {item["name"] for item in response.json()["items"]}


def test_app_survives_a_database_restart(stack: Stack, user: dict[str, Any]) -> None:
    started = time.monotonic()
    app = stack.container_ids("app")[0]
    before = stack.inspect(app)["State"]["StartedAt"], stack.inspect(app)["RestartCount"]
    stack.compose("restart", "db")
    stack.wait_until(
        "a database-backed request after the db restart",
        lambda: item_names(stack, user) is not None,
    )
    assert stack.container_ids("app") == [app]
    assert (stack.inspect(app)["State"]["StartedAt"], stack.inspect(app)["RestartCount"]) == before
    timed("db restart survived", started)


def test_backup_then_restore_brings_deleted_data_back(
    stack: Stack, user: dict[str, Any], tmp_path: Any
) -> None:
    started = time.monotonic()
    name = f"backed-up-{uuid.uuid4().hex[:8]}"
    item_id = create_item(stack, user, name)
    env = {**stack.env, "BACKUP_DIR": str(tmp_path)}
    output = run(["scripts/stack.sh", "backup"], env=env).stdout
    dump = re.search(r"wrote (\S+\.dump)", output)
    assert dump, output
    # It holds password hashes: its owner's alone, like .env.
    assert stat.S_IMODE(os.stat(dump.group(1)).st_mode) == 0o600
    with stack.client() as client:
        assert client.delete(f"/api/items/{item_id}", headers=auth(user)).status_code == 204
    assert name not in (item_names(stack, user) or set())

    run(["scripts/stack.sh", "restore", dump.group(1)], env=env)
    names = stack.wait_until(
        "the API after the restore", lambda: item_names(stack, user), timeout=60
    )
    assert name in names
    timed("backup, delete, restore", started)


def test_data_survives_down_and_up(stack: Stack, user: dict[str, Any]) -> None:
    started = time.monotonic()
    name = f"kept-{uuid.uuid4().hex[:8]}"
    create_item(stack, user, name)
    stack.compose("down")
    try:
        httpx.get(stack.url("/api/health"), verify=stack.ssl_context(), timeout=3)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the stack still answered after down")
    stack.deploy()  # a redeploy, the way CI does it
    assert name in (item_names(stack, user) or set())
    timed("down, deploy again, data still there", started)
