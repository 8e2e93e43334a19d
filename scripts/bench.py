#!/usr/bin/env python3
"""`make bench`: throughput, latency and memory of the API, checked against targets.

Starts an embedded PostgreSQL and the production server (gunicorn with uvicorn
workers) on loopback, seeds data, then drives a bounded load with httpx from
this process. Load and server share the machine's cores: the figures are a
floor, comparable run to run on the same machine, not a capacity plan.
Exits 1 when a target is missed.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.database.embedded import EmbeddedPostgres, free_port  # noqa: E402

PASSWORD = "bench password 123"


@dataclass(frozen=True)
class Target:
    min_rps: float
    max_p95_ms: float


# Measured on the reference machine (2 cores, load generator on the same cores),
# with a margin: a miss means a real regression, not noise.
TARGETS = {
    "GET /api/health": Target(min_rps=400, max_p95_ms=100),
    "GET /api/items/ (20 of 500, sorted)": Target(min_rps=150, max_p95_ms=250),
    "POST /api/items/": Target(min_rps=120, max_p95_ms=300),
    "POST /api/token/refresh": Target(min_rps=100, max_p95_ms=300),
}
MAX_WORKER_RSS_MB = 150


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.count / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def drive(
    name: str,
    call: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    *,
    client: httpx.AsyncClient,
    requests: int,
    concurrency: int,
    time_limit: float,
) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.monotonic() + time_limit

    async def worker() -> None:
        nonlocal errors
        for number in counter:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            response = await call(client, number)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code >= 400:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, len(latencies), time.perf_counter() - started, latencies, errors)


def worker_rss_mb(server: subprocess.Popen[bytes]) -> list[float]:
    children = psutil.Process(server.pid).children(recursive=True)
    return [child.memory_info().rss / 2**20 for child in children]


async def run_load(base: str, requests: int, concurrency: int, time_limit: float) -> list[Result]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        registered = await client.post(
            "/api/auth/register", json={"email": "bench@example.com", "password": PASSWORD}
        )
        registered.raise_for_status()
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        for number in range(500):
            await client.post(
                "/api/items/",
                json={"name": f"item {number}", "price": number + 1, "tags": ["bench"]},
                headers=headers,
            )
        refresh_tokens = []
        for _ in range(requests // 4):
            pair = await client.post(
                "/api/token/", json={"email": "bench@example.com", "password": PASSWORD}
            )
            pair.raise_for_status()
            refresh_tokens.append(pair.json()["refresh_token"])

        scenarios: dict[str, Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]] = {
            "GET /api/health": lambda c, _: c.get("/api/health"),
            "GET /api/items/ (20 of 500, sorted)": lambda c, n: c.get(
                "/api/items/",
                params={"limit": 20, "offset": n % 480, "sort": "-price"},
                headers=headers,
            ),
            "POST /api/items/": lambda c, n: c.post(
                "/api/items/", json={"name": f"new {n}", "price": 9.99, "tax": 1}, headers=headers
            ),
            "POST /api/token/refresh": lambda c, n: c.post(
                "/api/token/refresh", json={"refresh_token": refresh_tokens[n]}
            ),
        }
        results = []
        for name, call in scenarios.items():
            count = len(refresh_tokens) if "refresh" in name else requests
            results.append(
                await drive(
                    name,
                    call,
                    client=client,
                    requests=count,
                    concurrency=concurrency,
                    time_limit=time_limit,
                )
            )
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30, help="time limit per scenario")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    scratch.chmod(0o755)
    database = EmbeddedPostgres(
        scratch / "pg",
        port=free_port(),
        user="app",
        password="`b{5:P3kUv5LdJF.",
        database="bench",
    )
    database.start()
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "bench-secret-key-long-enough-for-hs256-signing",
        "POSTGRES_URL": f"127.0.0.1:{database.port}",
        "POSTGRES_USER": "app",
        "POSTGRES_PW": database.password,
        "POSTGRES_DB": "bench",
        "BCRYPT_ROUNDS": "4",  # logins are not what this measures
        "LOGIN_MAX_FAILURES": "1000000",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": str(args.workers),
    }
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([sys.executable, "-m", "app.prestart"], cwd=ROOT, env=env, check=True)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "app.main:app",
                "-k",
                "uvicorn_worker.UvicornWorker",
                "-w",
                str(args.workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(60):
            try:
                if httpx.get(f"{base}/api/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        results = asyncio.run(run_load(base, args.requests, args.concurrency, args.seconds))
        rss = worker_rss_mb(server)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        database.stop()

    print(f"\n{args.workers} workers, concurrency {args.concurrency}, {os.cpu_count()} cores\n")
    print(
        f"{'scenario':40} {'n':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6}  target"
    )
    missed = []
    for result in results:
        target = TARGETS[result.name]
        ok = (
            result.rps >= target.min_rps
            and result.percentile(0.95) <= target.max_p95_ms
            and result.errors == 0
        )
        if not ok:
            missed.append(result.name)
        print(
            f"{result.name:40} {result.count:>6} {result.rps:>8.0f} "
            f"{statistics.median(result.latencies_ms):>8.1f} {result.percentile(0.95):>8.1f} "
            f"{result.percentile(0.99):>8.1f} {result.errors:>6}  "
            f"{'ok' if ok else 'MISSED'} (>= {target.min_rps:.0f} req/s, "
            f"p95 <= {target.max_p95_ms:.0f} ms)"
        )
    print(
        f"\nworker RSS (MB): {', '.join(f'{mb:.0f}' for mb in rss)} "
        f"(target <= {MAX_WORKER_RSS_MB} each)"
    )
    if any(mb > MAX_WORKER_RSS_MB for mb in rss):
        missed.append("worker memory")
    if missed:
        print(f"\nMISSED: {', '.join(missed)}")
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
