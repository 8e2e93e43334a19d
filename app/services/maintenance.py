"""The sweep: deletes the rows that have outlived their use, from inside the app.

Every worker of every replica runs `periodic_sweeps` (app/main.py's lifespan);
each sweep takes a transaction-level advisory lock first and is skipped when
another process holds it, so at most one sweeps at a time and no cron container
is needed.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.database.db import SessionFactory
from app.models import (
    AuditEvent,
    AuthSession,
    LoginChallenge,
    LoginFailure,
    MailOutbox,
    OneTimeToken,
    PasskeyCeremony,
    RefreshToken,
    utcnow,
)
from app.observability import metrics
from app.services import item_ranks

logger = logging.getLogger(__name__)

# Held for the sweep's transaction (pg_try_advisory_xact_lock): one sweeper at once.
SWEEP_LOCK = "maintenance:sweep"


@dataclass(frozen=True, slots=True)
class SweepCounts:
    """What one sweep deleted."""

    sessions: int
    refresh_tokens: int
    login_failures: int
    # Mails done with (sent or given up) and single-use tokens expired, retained
    # as long as sessions are.
    mails: int = 0
    one_time_tokens: int = 0
    # Audit events older than AUDIT_RETENTION.
    audit_events: int = 0
    # Login challenges (a second factor's) expired, used or not.
    login_challenges: int = 0
    # Passkey ceremonies (registrations and sign-ins) expired, never finished.
    passkey_ceremonies: int = 0


async def sweep(*, db: AsyncSession, settings: Settings, now: datetime) -> SweepCounts | None:
    """Delete, in one transaction, and return how many (None: another process is
    sweeping, this one did nothing):

    - sessions ended (revoked) or expired SESSION_RETENTION ago or more, with
      their refresh tokens;
    - refresh tokens expired SESSION_RETENTION ago or more. A spent one is kept
      until then: until it expires, presenting it again is how a stolen token is
      detected (its family is revoked);
    - login failures (and mail requests) as old as the longest throttle window
      or older: they count against no limit any more (app/auth/throttle.py);
    - mails sent or given up, and single-use tokens expired, SESSION_RETENTION
      ago or more;
    - audit events that occurred AUDIT_RETENTION ago or more;
    - login challenges expired (a second step can no longer use them, and the
      failures they caused are counted by the login throttle, not by them);
    - passkey ceremonies expired (a finished one is deleted as it is taken).

    Nothing live is touched: a live session, its unexpired tokens, a failure
    still inside a window.

    Then, in a transaction of its own, the items' rank anchors are built again
    when due (app/services/item_ranks.py); a failure there is logged, and the
    sweep's deletions stand.
    """
    locked = (
        await db.exec(select(func.pg_try_advisory_xact_lock(func.hashtextextended(SWEEP_LOCK, 0))))
    ).one()
    if not locked:
        await db.rollback()
        logger.info("sweep skipped: another process is sweeping")
        return None
    kept_since = now - settings.SESSION_RETENTION
    ended = or_(
        col(AuthSession.revoked_at) <= kept_since, col(AuthSession.expires_at) <= kept_since
    )
    tokens = await db.exec(
        delete(RefreshToken).where(
            or_(
                col(RefreshToken.expires_at) <= kept_since,
                col(RefreshToken.session_id).in_(select(col(AuthSession.id)).where(ended)),
            )
        )
    )
    sessions = await db.exec(delete(AuthSession).where(ended))
    window = max(
        settings.LOGIN_FAILURE_WINDOW,
        settings.LOGIN_ACCOUNT_FAILURE_WINDOW,
        settings.MAIL_REQUEST_WINDOW,
    )
    failures = await db.exec(
        delete(LoginFailure).where(col(LoginFailure.failed_at) <= now - window)
    )
    mails = await db.exec(
        delete(MailOutbox).where(
            col(MailOutbox.next_attempt_at).is_(None), col(MailOutbox.created_at) <= kept_since
        )
    )
    one_time = await db.exec(delete(OneTimeToken).where(col(OneTimeToken.expires_at) <= kept_since))
    events = await db.exec(
        delete(AuditEvent).where(col(AuditEvent.occurred_at) <= now - settings.AUDIT_RETENTION)
    )
    challenges = await db.exec(delete(LoginChallenge).where(col(LoginChallenge.expires_at) <= now))
    ceremonies = await db.exec(
        delete(PasskeyCeremony).where(col(PasskeyCeremony.expires_at) <= now)
    )
    await db.commit()
    try:
        await item_ranks.maintain(db=db, settings=settings)
    except Exception:
        await db.rollback()
        logger.exception("building the item rank anchors failed; next at the next sweep")
    counts = SweepCounts(
        sessions=sessions.rowcount,
        refresh_tokens=tokens.rowcount,
        login_failures=failures.rowcount,
        mails=mails.rowcount,
        one_time_tokens=one_time.rowcount,
        audit_events=events.rowcount,
        login_challenges=challenges.rowcount,
        passkey_ceremonies=ceremonies.rowcount,
    )
    logger.info(
        "sweep deleted %d sessions, %d refresh tokens, %d login failures, %d mails, "
        "%d single-use tokens, %d audit events, %d login challenges, %d passkey ceremonies",
        counts.sessions,
        counts.refresh_tokens,
        counts.login_failures,
        counts.mails,
        counts.one_time_tokens,
        counts.audit_events,
        counts.login_challenges,
        counts.passkey_ceremonies,
    )
    return counts


async def sweep_periodically(*, session_factory: SessionFactory, settings: Settings) -> None:
    """Sweep every SWEEP_INTERVAL until cancelled. The first sweep comes after a
    random part of the interval: processes started together do not all try at
    once, and one restarted more often than the interval still sweeps."""
    interval = settings.SWEEP_INTERVAL.total_seconds()
    delay = random.uniform(0, interval)  # noqa: S311 (spreading, not a secret)
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            async with session_factory() as db:
                counts = await sweep(db=db, settings=settings, now=utcnow())
        except Exception:
            # A database outage (or any failure) must not end the sweeps for the
            # life of the process: the next interval tries again.
            metrics.SWEEP_RUNS.labels("failed").inc()
            logger.exception("sweep failed; next in %s", settings.SWEEP_INTERVAL)
        else:
            count_sweep(counts)


def count_sweep(counts: SweepCounts | None) -> None:
    """A sweep's outcome and rows, for Prometheus (None: skipped)."""
    if counts is None:
        metrics.SWEEP_RUNS.labels("skipped").inc()
        return
    metrics.SWEEP_RUNS.labels("swept").inc()
    for kind, removed in asdict(counts).items():
        metrics.SWEEP_ROWS_REMOVED.labels(kind).inc(removed)
    metrics.SWEEP_LAST_SUCCESS.set_to_current_time()


@asynccontextmanager
async def periodic_sweeps(
    *, session_factory: SessionFactory, settings: Settings
) -> AsyncIterator[asyncio.Task[None] | None]:
    """Sweeps in the background while the context lasts (none when SWEEP_INTERVAL
    is 0); stopped on leaving it, a sweep in progress rolled back."""
    if not settings.SWEEP_INTERVAL:
        yield None
        return
    task = asyncio.create_task(
        sweep_periodically(session_factory=session_factory, settings=settings), name="sweep"
    )
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
