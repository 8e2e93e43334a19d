"""Each worker's pools and hashing gate, written to their gauges every few
seconds: a sample costs nothing per request, and Prometheus scrapes every 15 s."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.passwords import gate_load
from app.config import Settings
from app.database.reads import ReadPool
from app.observability import metrics

SAMPLE_SECONDS = 5.0
WRITES, READS = "transactions", "reads"


def sample(*, engine: AsyncEngine, reader: ReadPool, settings: Settings) -> None:
    pool = engine.sync_engine.pool
    metrics.POOL_SIZE.labels(WRITES).set(settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW)
    metrics.POOL_IN_USE.labels(WRITES).set(pool.checkedout())  # type: ignore[attr-defined]
    reads = reader.stats()
    metrics.POOL_SIZE.labels(READS).set(settings.DB_READ_POOL_SIZE)
    metrics.POOL_IN_USE.labels(READS).set(reads.in_use)
    metrics.POOL_WAITING.labels(READS).set(reads.waiting)
    busy, queued = gate_load(settings)
    metrics.HASHING_BUSY.set(busy)
    metrics.HASHING_QUEUED.set(queued)


@asynccontextmanager
async def sampling(
    *, engine: AsyncEngine, reader: ReadPool, settings: Settings, on: bool
) -> AsyncIterator[None]:
    """Samples in the background while the context lasts (when `on`)."""
    if not on:
        yield
        return

    async def run() -> None:
        while True:
            sample(engine=engine, reader=reader, settings=settings)
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(run(), name="metrics-sampler")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
