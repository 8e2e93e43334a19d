"""Many replicas, one small Postgres: PgBouncer (COMPOSE_PROFILES=pgbouncer) in front.

Postgres here holds 50 connections; 8 app replicas x 2 workers may open 320 (20
pooled connections per worker), 480 while a deploy runs 4 more beside them.
Through PgBouncer (transaction pooling, 20 server connections) they serve a steady
load of reads and writes while `make deploy` replaces all 8 with a new release (4
new beside the 8, 4 old retired, twice): no request may fail, every acknowledged
write must be in the database, and Postgres never sees more than PgBouncer's pool
(sampled in pg_stat_activity). Without the pooler the same deploy refuses before
it changes anything.

Compose rather than the swarm: `--scale app=8` and the deploy's batches run on one
2-core host in a few minutes; the swarm's one-at-a-time update with its monitor
and delay would take 8 x ~25 s more for the same proof (the swarm's budget check
with the pooler is unit-tested in tests/scripts/test_swarm.py).
"""

import ipaddress
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack.conftest import (
    ARTIFACTS,
    COMPOSE_FILES,
    Stack,
    env_file_text,
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
from tests.stack.test_15_zero_downtime_deploy import deploy, image_of, scale

REPLICAS = 8
POSTGRES_MAX_CONNECTIONS = 50
POOL_SIZE = 20
# PgBouncer takes 12 containers' connections (12 x 40): the deploy replaces the 8 in
# two batches of 4 (8 at once beside 8 starve a 2-core host). The budget check
# sizes the batches from it, as it does from Postgres' max_connections without it.
MAX_CLIENT_CONN = 12 * 40
SURGE = 4
POOLER_SETTINGS = {
    "COMPOSE_PROFILES": "pgbouncer",
    "DB_POOLER_URL": "pgbouncer:6432",
    "PGBOUNCER_POOL_SIZE": str(POOL_SIZE),
    "PGBOUNCER_MAX_CLIENT_CONN": str(MAX_CLIENT_CONN),
    "WEB_CONCURRENCY": "2",
}
POOLER_OVERLAY = "tests/stack/compose.pgbouncer.test.yaml"
SAMPLE_SECONDS = 2.0


def backend_address(stack: Stack, service: str) -> str:
    (container,) = stack.container_ids(service)
    networks = stack.inspect(container)["NetworkSettings"]["Networks"]
    (address,) = [n["IPAddress"] for name, n in networks.items() if name.endswith("_backend")]
    return str(address)


@pytest.fixture(scope="module")
def pooled_stack(configured_stack: Stack) -> Iterator[Stack]:
    """The session's stack with PgBouncer, a 50-connection Postgres and 8 replicas;
    afterwards as before (one replica, no pooler, Postgres' default)."""
    stack = configured_stack
    started = time.monotonic()
    stack.env["COMPOSE_FILE"] = f"{COMPOSE_FILES}:{POOLER_OVERLAY}"
    stack.env_file.write_text(env_file_text({**stack.settings, **POOLER_SETTINGS}))
    try:
        stack.deploy()
        for replicas in range(2, REPLICAS + 1, 2):  # a few at a time: 2 cores
            scale(stack, replicas)
        timed(f"redeployed through PgBouncer, scaled to {REPLICAS}", started)
        yield stack
    finally:
        started = time.monotonic()
        stack.env["COMPOSE_FILE"] = COMPOSE_FILES
        stack.env_file.write_text(env_file_text(stack.settings))
        # Postgres back to its default first: one replica without the pooler needs 40.
        stack.compose("up", "--detach", "--wait", "--no-deps", "db")
        scale(stack, 1)
        stack.deploy()
        stack.compose("--profile", "pgbouncer", "rm", "--force", "--stop", "pgbouncer")
        timed("back to one replica without PgBouncer", started)


class ConnectionSampler:
    """Postgres' client connections, sampled in pg_stat_activity while a test runs:
    all of them, and those from PgBouncer's address."""

    def __init__(self, stack: Stack, pooler_address: str) -> None:
        (self.db,) = stack.container_ids("db")
        self.user = stack.settings.get("POSTGRES_USER", "app")
        self.database = stack.settings.get("POSTGRES_DB", "app")
        address = ipaddress.ip_address(pooler_address)  # safe to inline
        self.query = (
            "SELECT count(*), count(*) FILTER (WHERE client_addr = "  # noqa: S608
            f"'{address}') FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        # `docker exec`, not `docker compose exec`: a second CLI per sample is CPU
        # the stack under test needs.
        command = ["docker", "exec", self.db, "psql", "-U", self.user, "-d", self.database]
        while not self._stop.wait(SAMPLE_SECONDS):
            shown = run([*command, "-At", "-c", self.query], check=False).stdout.strip()
            if "|" in shown:
                total, pooled = shown.split("|")
                self.samples.append((int(total), int(pooled)))

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_eight_replicas_through_pgbouncer_take_a_new_release_under_load(
    pooled_stack: Stack,
) -> None:
    stack = pooled_stack
    started = time.monotonic()
    old = set(stack.container_ids("app"))
    assert len(old) == REPLICAS, old
    assert stack.psql("SHOW max_connections").strip() == str(POSTGRES_MAX_CONNECTIONS)
    old_image = {image_of(stack, c) for c in old}
    user: dict[str, Any] = register_user(stack, "pooled")
    prefix = f"pooled-{uuid.uuid4().hex[:8]}"
    marks: dict[str, float] = {}
    workers, rate = int(DEPLOY_LOAD["workers"]), DEPLOY_LOAD["rate"]
    with (
        ConnectionSampler(stack, backend_address(stack, "pgbouncer")) as sampler,
        Load(stack, user["access_token"], name_prefix=prefix, workers=workers, rate=rate) as load,
    ):
        time.sleep(3)
        marks["deploy started"] = time.monotonic()
        result = deploy(stack, APP_REVISION=f"e2e-{uuid.uuid4().hex[:12]}")
        marks["deploy done"] = time.monotonic()
        time.sleep(2)
    outcomes = load.outcomes
    (ARTIFACTS / "deploy-pgbouncer.log").write_text(result.stdout + result.stderr)
    write_timeline(ARTIFACTS / "timeline-deploy-pgbouncer.csv", outcomes, marks)
    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    found = item_names_in_database(stack, prefix)
    peak_total = max(total for total, _ in sampler.samples)
    peak_pooled = max(pooled for _, pooled in sampler.samples)
    record_figures(
        f"make deploy of {REPLICAS} replicas x 2 workers through PgBouncer under load",
        {
            **figures(outcomes),
            "writes found": len(acknowledged & found),
            "writes lost": len(acknowledged - found),
            "deploy s": round(marks["deploy done"] - marks["deploy started"], 1),
            "peak Postgres connections (all)": peak_total,
            "peak Postgres connections from PgBouncer": peak_pooled,
            "samples": len(sampler.samples),
        },
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"starting {SURGE} new app container(s) beside the {REPLICAS} running" in (result.stdout)
    assert not [o for o in outcomes if not o.ok], statuses(outcomes)
    assert acknowledged <= found, f"acknowledged but lost: {sorted(acknowledged - found)}"
    new = set(stack.container_ids("app"))
    assert len(new) == REPLICAS
    assert not new & old
    assert not {image_of(stack, c) for c in new} & old_image
    # 12 containers' 480 possible connections met Postgres as PgBouncer's 20 at most.
    assert 0 < peak_pooled <= POOL_SIZE, sampler.samples
    assert peak_total < POSTGRES_MAX_CONNECTIONS, sampler.samples
    timed(f"make deploy of {REPLICAS} replicas through PgBouncer under load", started)


def test_without_the_pooler_the_same_deploy_is_refused(pooled_stack: Stack) -> None:
    stack = pooled_stack
    before = set(stack.container_ids("app"))
    stack.env_file.write_text(env_file_text(stack.settings))
    try:
        result = deploy(stack, APP_REVISION=f"e2e-{uuid.uuid4().hex[:12]}")
    finally:
        stack.env_file.write_text(env_file_text({**stack.settings, **POOLER_SETTINGS}))
    output = result.stdout + result.stderr
    (ARTIFACTS / "deploy-pgbouncer-refused.log").write_text(output)
    assert result.returncode != 0, output[-4000:]
    last_line = output.strip().splitlines()[-1]
    assert "needs 360 database connections" in last_line, last_line
    assert "Nothing was changed" in last_line, last_line
    assert set(stack.container_ids("app")) == before
