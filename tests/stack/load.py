"""Bounded load through Traefik for the fault tests, and what each request got back.

A `Load` runs `workers` concurrent clients in a background thread (its own event
loop) while the test stops, kills or restarts containers. Each worker paces
itself so the whole stays under `rate` requests a second. Every request is
recorded (kind, start, latency, status or error) and each write's unique item
name, so a test can count the writes that were acknowledged and look for each
one in the database afterwards.
"""

import asyncio
import csv
import itertools
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.stack.conftest import Stack

READ = "read"  # GET /api/items/: authenticated, one query
WRITE = "write"  # POST /api/items/ with a unique name
READY = "ready"  # GET /api/health/ready: what Docker's healthcheck asks
# The deploy tests' load: "a few hundred requests a second", half of them writes.
# The load generator shares the 2 cores with the stack, so what it reaches is
# recorded with the figures (`req/s`).
DEPLOY_LOAD: dict[str, float] = {"workers": 24, "rate": 300.0}


@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float  # time.monotonic() when sent
    seconds: float
    status: int | None  # None: no HTTP answer (connection error or client timeout)
    error: str = ""
    item_name: str = ""
    # A JSON body means the app answered; Traefik's own errors are plain text.
    from_app: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def acknowledged(self) -> bool:
        return self.kind == WRITE and self.status == 201


class Load:
    """`with Load(...) as load:` sends requests until the block ends."""

    def __init__(
        self,
        stack: Stack,
        access_token: str,
        *,
        name_prefix: str,
        workers: int = 6,
        rate: float = 60.0,
        write_every: int = 2,
        timeout: float = 30.0,
        readiness_every: float | None = None,
    ) -> None:
        self.stack = stack
        self.headers = {"Authorization": f"Bearer {access_token}"}
        self.name_prefix = name_prefix
        self.workers = workers
        self.interval = workers / rate  # per worker, so the total stays under `rate`
        self.write_every = write_every  # 1: only writes, 2: every other request, 0: none
        self.timeout = timeout
        self.readiness_every = readiness_every
        self.outcomes: list[Outcome] = []
        self._names = itertools.count()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 10)
        assert not self._thread.is_alive(), "the load did not stop"
        if self._failure is not None:
            raise AssertionError("the load generator itself failed") from self._failure
        return self.outcomes

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop(), in the test's thread
            self._failure = exc

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.workers + 1)
        async with httpx.AsyncClient(
            base_url=self.stack.url(""),
            verify=self.stack.ssl_context(),
            timeout=self.timeout,
            limits=limits,
        ) as client:
            tasks = [self._worker(client, n) for n in range(self.workers)]
            if self.readiness_every:
                tasks.append(self._readiness(client, self.readiness_every))
            await asyncio.gather(*tasks)

    async def _worker(self, client: httpx.AsyncClient, number: int) -> None:
        for sent in itertools.count():
            if self._stop.is_set():
                return
            next_at = time.monotonic() + self.interval
            if self.write_every and (sent + number) % self.write_every == 0:
                name = f"{self.name_prefix}-{next(self._names)}"
                body = {"name": name, "price": 1}
                await self._send(client, WRITE, "POST", "/api/items/", json=body, item_name=name)
            else:
                await self._send(client, READ, "GET", "/api/items/?limit=5")
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _readiness(self, client: httpx.AsyncClient, every: float) -> None:
        while not self._stop.is_set():
            next_at = time.monotonic() + every
            await self._send(client, READY, "GET", "/api/health/ready")
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _send(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        item_name: str = "",
    ) -> None:
        started = time.monotonic()
        try:
            response = await client.request(method, path, json=json, headers=self.headers)
        except httpx.HTTPError as exc:
            outcome = Outcome(kind, started, time.monotonic() - started, None, repr(exc), item_name)
        else:
            outcome = Outcome(
                kind,
                started,
                time.monotonic() - started,
                response.status_code,
                "" if response.is_success else response.text[:200],
                item_name,
                response.headers.get("content-type", "").startswith("application/json"),
            )
        self.outcomes.append(outcome)


def between(outcomes: Iterable[Outcome], start: float, end: float) -> list[Outcome]:
    """The requests sent in [start, end)."""
    return [o for o in outcomes if start <= o.started < end]


def statuses(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """How many of each answer: '200', '503 app', '503 proxy', 'no answer'..."""
    counts: Counter[str] = Counter()
    for o in outcomes:
        if o.status is None:
            counts["no answer"] += 1
        elif o.ok:
            counts[str(o.status)] += 1
        else:
            counts[f"{o.status} {'app' if o.from_app else 'proxy'}"] += 1
    return dict(sorted(counts.items()))


def figures(outcomes: list[Outcome]) -> dict[str, Any]:
    """Requests sent and failed, writes acknowledged, latencies: for the record."""
    failed = [o for o in outcomes if not o.ok]
    latencies = sorted(o.seconds for o in outcomes)
    span = max((o.started + o.seconds for o in outcomes), default=0.0) - min(
        (o.started for o in outcomes), default=0.0
    )
    return {
        "sent": len(outcomes),
        "req/s": round(len(outcomes) / span, 1) if span > 0 else None,
        "failed": len(failed),
        "writes acknowledged": sum(o.acknowledged for o in outcomes),
        "statuses": statuses(outcomes),
        "p50 s": round(statistics.median(latencies), 3) if latencies else None,
        "max s": round(latencies[-1], 3) if latencies else None,
        "max failed s": round(max(o.seconds for o in failed), 3) if failed else None,
    }


def item_names_in_database(stack: Stack, prefix: str) -> set[str]:
    """Every item whose name starts with `prefix`, read with psql in the db container
    (not through the app under test)."""
    assert re.fullmatch(r"[a-z0-9-]+", prefix), prefix  # the tests' own, safe to inline
    query = f"SELECT name FROM items WHERE name LIKE '{prefix}-%'"  # noqa: S608
    return set(stack.psql(query).split())


def write_timeline(path: Path, outcomes: list[Outcome], marks: dict[str, float]) -> None:
    """Every request as a CSV row (seconds from the first), and the test's moments
    (`marks`: stop, start...) as rows of their own: the evidence behind the figures."""
    origin = min([o.started for o in outcomes] + list(marks.values()), default=0.0)
    rows = [
        (
            o.started - origin,
            o.kind,
            o.status or "",
            f"{o.seconds:.3f}",
            "app" if o.from_app else "",
            o.item_name,
            o.error[:80],
        )
        for o in outcomes
    ]
    rows += [
        (moment - origin, f"-- {label}", "", "", "", "", "") for label, moment in marks.items()
    ]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["t s", "kind", "status", "seconds", "from", "item", "error"])
        for row in sorted(rows, key=lambda row: row[0]):
            writer.writerow([f"{row[0]:.3f}", *row[1:]])
