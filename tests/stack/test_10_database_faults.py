"""Postgres stopped, then killed, while clients read and write through Traefik.

The load (tests/stack/load.py) records every request; the figures go to the
run's summary. A write counts as acknowledged when the API answered 201, and
each acknowledged item is looked up with psql afterwards: none may be missing.
"""

import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.stack.conftest import ARTIFACTS, Stack, record_figures, register_user, timed
from tests.stack.load import (
    READ,
    READY,
    WRITE,
    Load,
    Outcome,
    between,
    figures,
    item_names_in_database,
    statuses,
    write_timeline,
)

BASELINE_SECONDS = 3.0
OUTAGE_SECONDS = 8.0
AFTER_RECOVERY_SECONDS = 3.0
# Failing fast: a request that meets a stopped database is answered within the
# pool timeout (DB_POOL_TIMEOUT, 5 s) plus a margin. Most take milliseconds (the
# name `db` no longer resolves, connections are refused); a read that was already
# waiting for a pooled connection when the database went away waits out the pool
# timeout; once a read has found the database unreachable, the next ones wait at
# most DB_CONNECT_TIMEOUT (2 s; app/database/reads.py).
FAIL_FAST_SECONDS = 5.0 + 1.0
# From the database healthy again to the API serving reads and writes.
RECOVERY_SECONDS = 15.0


@pytest.fixture(scope="module")
def load_user(configured_stack: Stack) -> dict[str, Any]:
    return register_user(configured_stack, "db-faults")


def db_container(stack: Stack) -> str:
    (container,) = stack.container_ids("db")
    return container


def wait_healthy(stack: Stack, container: str, timeout: float = 60) -> None:
    stack.wait_until(
        f"container {container[:12]} healthy",
        lambda: stack.inspect(container)["State"].get("Health", {}).get("Status") == "healthy",
        timeout=timeout,
        interval=0.2,
    )


def first_success_after(outcomes: list[Outcome], moment: float, kind: str) -> float | None:
    """Seconds from `moment` to the first successful `kind` request sent after it."""
    later = [o.started for o in outcomes if o.kind == kind and o.started >= moment and o.ok]
    return min(later) - moment if later else None


def seconds_until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """How long until `predicate` holds (polled), or None if it did not within `timeout`:
    the test records its figures before it asserts."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.kind} {o.status} {o.error[:120]}" for o in outcomes if not o.ok]


def test_stopped_database_gives_fast_503s_then_the_app_recovers_by_itself(
    configured_stack: Stack, load_user: dict[str, Any]
) -> None:
    stack = configured_stack
    started = time.monotonic()
    app = stack.container_ids("app")[0]
    app_started_at = stack.inspect(app)["State"]["StartedAt"]
    prefix = f"stop-{uuid.uuid4().hex[:8]}"

    with Load(stack, load_user["access_token"], name_prefix=prefix, readiness_every=0.25) as load:
        time.sleep(BASELINE_SECONDS)
        stopping = time.monotonic()
        stack.compose("stop", "db")  # SIGINT: Postgres's fast shutdown
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        starting = time.monotonic()
        stack.compose("start", "db")
        wait_healthy(stack, db_container(stack))
        db_healthy = time.monotonic()
        recovery = seconds_until(
            lambda: (
                first_success_after(load.outcomes, db_healthy, WRITE) is not None
                and first_success_after(load.outcomes, db_healthy, READ) is not None
            ),
            timeout=RECOVERY_SECONDS,
        )
        recovered = time.monotonic()
        time.sleep(AFTER_RECOVERY_SECONDS)
        ended = time.monotonic()
    outcomes = load.outcomes
    write_timeline(
        ARTIFACTS / "timeline-postgres-stopped.csv",
        outcomes,
        {
            "db stop": stopping,
            "db stopped": stopped,
            "db start": starting,
            "db healthy": db_healthy,
            "recovered": recovered,
        },
    )

    baseline = between(outcomes, 0, stopping)
    outage = between(outcomes, stopped, starting)
    # From the first signal to the API answering again: the only window where a
    # request may fail, and then only with a 503.
    disturbed = between(outcomes, stopping, recovered)
    after = between(outcomes, recovered, ended)
    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    found = item_names_in_database(stack, prefix)
    outage_failed = [o for o in outage if not o.ok]
    ready_statuses = statuses(o for o in outage if o.kind == READY)
    record_figures(
        "postgres stopped under load",
        {
            **figures([o for o in outcomes if o.kind != READY]),
            "writes found": len(acknowledged & found),
            "writes lost": len(acknowledged - found),
            "unacknowledged writes found": len(found - acknowledged),
            "outage s": round(starting - stopped, 1),
            "outage requests": len(outage),
            "outage statuses": statuses(outage),
            "outage max failed s": round(max(o.seconds for o in outage_failed), 3)
            if outage_failed
            else None,
            "readiness during outage": ready_statuses,
            "recovery after db healthy s": None if recovery is None else round(recovery, 2),
        },
    )

    assert baseline
    assert not failures(baseline), failures(baseline)
    assert recovery is not None, f"not recovered: {statuses(between(outcomes, db_healthy, ended))}"
    assert outage_failed, "requests succeeded although the database was stopped"
    assert {o.status for o in disturbed if not o.ok} == {503}, statuses(disturbed)
    assert max(o.seconds for o in disturbed if not o.ok) < FAIL_FAST_SECONDS, statuses(outage)
    assert ready_statuses
    assert set(ready_statuses) <= {"503 app", "503 proxy"}, ready_statuses
    assert after
    assert not failures(after), failures(after)
    assert acknowledged <= found, f"acknowledged but lost: {sorted(acknowledged - found)}"
    # Recovered without a restart of the app container.
    assert stack.container_ids("app") == [app]
    assert stack.inspect(app)["State"]["StartedAt"] == app_started_at
    timed("postgres stopped under load: fast 503s, recovery", started)


def test_postgres_killed_mid_load_keeps_every_acknowledged_write(
    configured_stack: Stack, load_user: dict[str, Any]
) -> None:
    stack = configured_stack
    started = time.monotonic()
    db = db_container(stack)
    restarts_before = stack.inspect(db)["RestartCount"]
    prefix = f"kill-{uuid.uuid4().hex[:8]}"

    with Load(stack, load_user["access_token"], name_prefix=prefix, write_every=1) as load:
        time.sleep(BASELINE_SECONDS)
        killing = time.monotonic()
        # What the OOM killer does: SIGKILL to the postmaster from outside the
        # container. (`docker kill` would count as a deliberate stop, which the
        # restart policy honours.)
        os.kill(stack.inspect(db)["State"]["Pid"], signal.SIGKILL)
        # No one starts it: the restart policy (unless-stopped) brings it back.
        stack.wait_until(
            "the restart policy restarting the killed database",
            lambda: stack.inspect(db)["RestartCount"] > restarts_before,
            interval=0.2,
        )
        wait_healthy(stack, db)
        db_healthy = time.monotonic()
        recovery = seconds_until(
            lambda: first_success_after(load.outcomes, db_healthy, WRITE) is not None,
            timeout=RECOVERY_SECONDS,
        )
        recovered = time.monotonic()
        time.sleep(AFTER_RECOVERY_SECONDS)
        ended = time.monotonic()
    outcomes = load.outcomes
    write_timeline(
        ARTIFACTS / "timeline-postgres-killed.csv",
        outcomes,
        {"db kill": killing, "db healthy": db_healthy, "recovered": recovered},
    )

    acknowledged = {o.item_name for o in outcomes if o.acknowledged}
    before_kill = between(outcomes, 0, killing)
    found = item_names_in_database(stack, prefix)
    disturbed = between(outcomes, killing, recovered)
    record_figures(
        "postgres SIGKILL mid-load",
        {
            **figures(outcomes),
            "writes found": len(acknowledged & found),
            "writes lost": len(acknowledged - found),
            "unacknowledged writes found": len(found - acknowledged),
            "disturbed statuses": statuses(disturbed),
            "db back healthy after s": round(db_healthy - killing, 1),
            "writes served again after s": round(recovered - killing, 1),
        },
    )

    assert any(o.acknowledged for o in before_kill), "no write was acknowledged before the kill"
    assert recovery is not None, f"not recovered: {statuses(between(outcomes, db_healthy, ended))}"
    assert acknowledged <= found, f"acknowledged but lost: {sorted(acknowledged - found)}"
    assert stack.inspect(db)["RestartCount"] == restarts_before + 1
    assert {o.status for o in disturbed if not o.ok} <= {503}, statuses(disturbed)
    assert not failures(between(outcomes, recovered, ended))
    timed("postgres SIGKILL mid-load: every acknowledged write kept", started)
