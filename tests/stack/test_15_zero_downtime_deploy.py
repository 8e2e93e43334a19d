"""`make deploy` of a new release on one host, under load: no client notices.

The app (one replica, as deployed) serves a steady load of reads and writes
through Traefik while scripts/deploy.sh builds a changed image (another revision
label: another image id), migrates, starts a new container beside the old one,
waits until Traefik routes to it and retires the old one. No request may fail,
every acknowledged write must be in the database, and afterwards only the new
container serves. Then a broken release (one that exits at start, one that never
turns ready) is deployed under the same load: the deploy fails, saying so, the
broken containers never receive a request, and the old one serves on. Last, two
replicas with the default pools: Postgres cannot hold one more beside them, and
the deploy refuses before it changes anything.
"""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack.conftest import (
    ARTIFACTS,
    COMPOSE_FILES,
    Stack,
    record_figures,
    register_user,
    run,
    timed,
)
from tests.stack.load import (
    DEPLOY_LOAD,
    Load,
    figures,
    item_names_in_database,
    statuses,
    write_timeline,
)

REPLICAS = 1
# With the default pools a container may open 40 connections: Postgres (100)
# holds no third one beside two.
TOO_MANY_REPLICAS = 2
BROKEN_OVERLAY = "tests/stack/releases/compose.broken.yaml"
# Seconds the broken `unready` release is given to turn healthy (WAIT_TIMEOUT).
BROKEN_WAIT_TIMEOUT = "20"
# Traefik adds a healthy replica, and forgets a removed one, within its provider
# throttle (2 s).
SETTLE_SECONDS = 3.0
# What the deploy says about each broken release.
BROKEN_REASONS = {"exit": "exited at start", "unready": "not healthy within 20s"}
REVISION_LABEL = "org.opencontainers.image.revision"


@pytest.fixture(scope="module")
def load_user(configured_stack: Stack) -> dict[str, Any]:
    return register_user(configured_stack, "deploy")


@pytest.fixture(scope="module")
def replicated(configured_stack: Stack) -> Iterator[Stack]:
    """The stack with REPLICAS app containers, and again afterwards."""
    scale(configured_stack, REPLICAS)
    yield configured_stack
    scale(configured_stack, REPLICAS)


def scale(stack: Stack, replicas: int) -> None:
    stack.compose(
        "up",
        "--detach",
        "--wait",
        "--no-recreate",
        "--no-deps",
        "--scale",
        f"app={replicas}",
        "app",
    )
    time.sleep(SETTLE_SECONDS)


def deploy(stack: Stack, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/deploy.sh as CI runs it, with extra environment; its result, pass or fail."""
    return run(["scripts/deploy.sh"], env={**stack.env, **env}, check=False, timeout=600)


def image_of(stack: Stack, container: str) -> str:
    image: str = stack.inspect(container)["Image"]
    return image


def tagged_image(stack: Stack) -> str:
    name = stack.settings["APP_IMAGE"]
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()


def proxy_address(stack: Stack, container: str) -> str:
    network = stack.settings["PROXY_NETWORK"]
    address: str = stack.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"]
    return f"{address}:8000"


def answering_addresses(stack: Stack, since: int) -> set[str]:
    """Every backend Traefik sent a request to since `since` (Unix time, its JSON access log)."""
    traefik = stack.container_ids("traefik")[0]
    logs = run(["docker", "logs", "--since", str(since), traefik]).stdout
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return {e["ServiceAddr"] for e in entries if e.get("ServiceAddr")}


def app_containers_healthy(stack: Stack) -> list[str]:
    return [
        stack.inspect(container)["State"].get("Health", {}).get("Status", "")
        for container in stack.container_ids("app")
    ]


def test_deploying_a_new_release_fails_no_request(
    replicated: Stack, load_user: dict[str, Any]
) -> None:
    stack = replicated
    started = time.monotonic()
    old = set(stack.container_ids("app"))
    old_image = {image_of(stack, c) for c in old}
    assert len(old) == REPLICAS, old
    revision = f"e2e-{uuid.uuid4().hex[:12]}"
    prefix = f"deploy-{uuid.uuid4().hex[:8]}"
    marks: dict[str, float] = {}
    workers, rate = int(DEPLOY_LOAD["workers"]), DEPLOY_LOAD["rate"]
    with Load(
        stack, load_user["access_token"], name_prefix=prefix, workers=workers, rate=rate
    ) as load:
        time.sleep(2)
        marks["deploy started"] = time.monotonic()
        result = deploy(stack, APP_REVISION=revision)
        marks["deploy done"] = time.monotonic()
        time.sleep(1.1)
        after_deploy = int(time.time())  # a whole second, after the deploy returned
        time.sleep(1)
    outcomes = load.outcomes
    (ARTIFACTS / "deploy-release.log").write_text(result.stdout + result.stderr)
    write_timeline(ARTIFACTS / "timeline-deploy-release.csv", outcomes, marks)
    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    found = item_names_in_database(stack, prefix)
    record_figures(
        "make deploy of a new release under load",
        {
            **figures(outcomes),
            "writes found": len(acknowledged & found),
            "writes lost": len(acknowledged - found),
            "deploy s": round(marks["deploy done"] - marks["deploy started"], 1),
        },
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert not [o for o in outcomes if not o.ok], statuses(outcomes)
    assert acknowledged <= found, f"acknowledged but lost: {sorted(acknowledged - found)}"

    # Only new containers, of the new image (which the tag now names), all healthy.
    new = set(stack.container_ids("app"))
    assert len(new) == REPLICAS, new
    assert not new & old, (old, new)
    new_image = {image_of(stack, c) for c in new}
    assert new_image == {tagged_image(stack)}
    assert not new_image & old_image
    assert {stack.inspect(c)["Config"]["Labels"][REVISION_LABEL] for c in new} == {revision}
    assert app_containers_healthy(stack) == ["healthy"] * REPLICAS
    # They serve: requests after the deploy reached both new containers, nothing else.
    with stack.client() as client:
        for _ in range(4 * REPLICAS):
            assert client.get("/api/health/ready").status_code == 200
    assert answering_addresses(stack, after_deploy) == {proxy_address(stack, c) for c in new}
    # Compose's state agrees: `up` finds the new containers up to date, recreates none.
    stack.compose("up", "--detach", "--wait", "--no-deps", "--scale", f"app={REPLICAS}", "app")
    assert set(stack.container_ids("app")) == new
    timed("make deploy of a new release under load", started)


@pytest.mark.parametrize("breakage", ["exit", "unready"])
def test_a_broken_release_never_takes_traffic_and_the_old_one_serves_on(
    replicated: Stack, load_user: dict[str, Any], breakage: str
) -> None:
    stack = replicated
    started = time.monotonic()
    old = set(stack.container_ids("app"))
    old_image = {image_of(stack, c) for c in old}
    assert len(old) == REPLICAS, old
    assert len(old_image) == 1, old_image
    since = int(time.time())
    prefix = f"broken-{breakage}-{uuid.uuid4().hex[:8]}"
    marks: dict[str, float] = {}
    with Load(stack, load_user["access_token"], name_prefix=prefix) as load:
        time.sleep(2)
        marks["deploy started"] = time.monotonic()
        result = deploy(
            stack,
            COMPOSE_FILE=f"{COMPOSE_FILES}:{BROKEN_OVERLAY}",
            BREAK=breakage,
            WAIT_TIMEOUT=BROKEN_WAIT_TIMEOUT,
        )
        marks["deploy failed"] = time.monotonic()
        time.sleep(2)
    outcomes = load.outcomes
    output = result.stdout + result.stderr
    (ARTIFACTS / f"deploy-broken-{breakage}.log").write_text(output)
    write_timeline(ARTIFACTS / f"timeline-deploy-broken-{breakage}.csv", outcomes, marks)
    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    found = item_names_in_database(stack, prefix)
    record_figures(
        f"make deploy of a broken release ({breakage}) under load",
        {
            **figures(outcomes),
            "writes found": len(acknowledged & found),
            "writes lost": len(acknowledged - found),
            "deploy s (until it failed)": round(
                marks["deploy failed"] - marks["deploy started"], 1
            ),
        },
    )

    assert result.returncode != 0, output[-4000:]
    last_line = output.strip().splitlines()[-1]
    assert "deploy failed" in last_line, last_line
    assert "still serving" in last_line, last_line
    assert BROKEN_REASONS[breakage] in last_line, last_line
    assert not [o for o in outcomes if not o.ok], statuses(outcomes)
    assert acknowledged <= found, f"acknowledged but lost: {sorted(acknowledged - found)}"
    # The old containers serve on, their image still under the tag; the broken ones are gone.
    assert set(stack.compose("ps", "--all", "--quiet", "app").stdout.split()) == old
    assert app_containers_healthy(stack) == ["healthy"] * REPLICAS
    assert {tagged_image(stack)} == old_image
    # Traefik never sent a request anywhere but to the old containers.
    assert answering_addresses(stack, since) == {proxy_address(stack, c) for c in old}
    timed(f"make deploy of a broken release ({breakage}): refused", started)


def test_a_deploy_the_database_cannot_hold_refuses_and_changes_nothing(replicated: Stack) -> None:
    stack = replicated
    started = time.monotonic()
    scale(stack, TOO_MANY_REPLICAS)
    try:
        before = set(stack.container_ids("app"))
        image = tagged_image(stack)
        result = deploy(stack, APP_REVISION=f"e2e-{uuid.uuid4().hex[:12]}")
        output = result.stdout + result.stderr
        (ARTIFACTS / "deploy-refused.log").write_text(output)
        assert result.returncode != 0, output[-4000:]
        last_line = output.strip().splitlines()[-1]
        assert "database connections" in last_line, last_line
        assert "Nothing was changed" in last_line, last_line
        assert "building" not in output, output[-4000:]
        assert set(stack.compose("ps", "--all", "--quiet", "app").stdout.split()) == before
        assert tagged_image(stack) == image
        with stack.client() as client:
            assert client.get("/api/health/ready").status_code == 200
    finally:
        scale(stack, REPLICAS)
    timed("make deploy refused: no room in Postgres for a new container", started)
