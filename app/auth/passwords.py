"""bcrypt hashing, always on a worker thread. The only module that imports bcrypt.

Hashing is admission-controlled: at most `PASSWORD_HASH_THREADS` checks run at
once in a process and at most `PASSWORD_HASH_QUEUE` more wait; past that a
request is refused at once with a 503 and `Retry-After`. A login flood then costs
a queue slot, never a database connection or an unbounded wait.
"""

import asyncio
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import anyio
import anyio.to_thread
import bcrypt
from opentelemetry import trace

from app.config import Settings
from app.exceptions import ServiceUnavailable
from app.observability import metrics
from app.schema.users import MAX_PASSWORD_BYTES

HASHING_BUSY = "Too many password checks in progress; retry shortly"

T = TypeVar("T")

# A span per hash when tracing is on (app/observability/tracing.py); else a no-op.
_tracer = trace.get_tracer(__name__)


# The hash of an account that has no password (one created by an OpenID
# provider, or whose password a provider's sign-in voided): no password matches
# it, and checking one costs what a real check costs. Password recovery sets one.
NO_PASSWORD = ""


def has_password(hashed: str) -> bool:
    return hashed != NO_PASSWORD


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def _matches(password: str, hashed: str) -> bool:
    encoded = password.encode()
    if len(encoded) > MAX_PASSWORD_BYTES:
        # Spend the same time as a real check, then fail: no length oracle.
        bcrypt.checkpw(b"x", hashed.encode())
        return False
    return bcrypt.checkpw(encoded, hashed.encode())


@lru_cache
def _dummy_hash(rounds: int) -> str:
    return _hash("not-a-real-password", rounds)


def _verify_against_dummy(password: str, rounds: int) -> None:
    _matches(password, _dummy_hash(rounds))


class HashingGate:
    """At most `threads` bcrypt calls at once; at most `queue` more waiting."""

    def __init__(self, *, threads: int, queue: int) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._threads = threads
        self._capacity = threads + queue
        self._admitted = 0

    @property
    def load(self) -> tuple[int, int]:
        """Hashes running, and waiting for a thread."""
        busy = min(self._admitted, self._threads)
        return busy, self._admitted - busy

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if self._admitted >= self._capacity:
            metrics.HASHING_REFUSED.inc()
            raise ServiceUnavailable(HASHING_BUSY, retry_after_seconds=1)
        self._admitted += 1
        try:
            with _tracer.start_as_current_span("password hash"):
                return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)
        finally:
            self._admitted -= 1


# One gate per event loop and sizing (a worker has one; tests may start several).
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, int], HashingGate]] = (
    weakref.WeakKeyDictionary()
)


def _gate(settings: Settings) -> HashingGate:
    sizing = (settings.PASSWORD_HASH_THREADS, settings.PASSWORD_HASH_QUEUE)
    gates = _gates.setdefault(asyncio.get_running_loop(), {})
    if sizing not in gates:
        gates[sizing] = HashingGate(threads=sizing[0], queue=sizing[1])
    return gates[sizing]


def gate_load(settings: Settings) -> tuple[int, int]:
    """This event loop's hashes running and waiting (app/observability/sampler.py)."""
    gate = _gates.get(asyncio.get_running_loop(), {}).get(
        (settings.PASSWORD_HASH_THREADS, settings.PASSWORD_HASH_QUEUE)
    )
    return gate.load if gate is not None else (0, 0)


async def hash_password(password: str, *, settings: Settings) -> str:
    return await _gate(settings).run(_hash, password, settings.BCRYPT_ROUNDS)


async def verify_password(password: str, hashed: str, *, settings: Settings) -> bool:
    if not has_password(hashed):
        await verify_against_dummy(password, settings=settings)
        return False
    return await _gate(settings).run(_matches, password, hashed)


async def verify_against_dummy(password: str, *, settings: Settings) -> None:
    """For an unknown email: cost what a real check costs, so timing reveals nothing."""
    await _gate(settings).run(_verify_against_dummy, password, settings.BCRYPT_ROUNDS)
