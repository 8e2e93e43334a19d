"""The mail outbox: requests queue mails in `mail_outbox`, a sender in every worker
delivers them.

A request only inserts a row in its own transaction (the mail exists if and only
if what caused it committed) and never waits for SMTP. Each worker's sender
claims one due row at a time (`FOR UPDATE SKIP LOCKED`, so workers and replicas
never take the same row), composes it if needed (with the composer it was given:
the outbox knows no account), commits the claim, sends with
no transaction open, then marks it sent or schedules a retry with exponential
backoff and jitter, keeping the error; after MAIL_MAX_ATTEMPTS, or a permanent
refusal, it gives up. Delivery is at least once: a claim is a lease, so a mail
whose worker died mid-send is sent again when the lease runs out.

Senders look for due rows every MAIL_POLL_INTERVAL and at once when a request in
their own process queued one (`wake_senders`, after its commit).
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.database.db import SessionFactory
from app.mail.render import RenderedMail
from app.mail.smtp import MailError, build_message, send_mail
from app.models import MailOutbox, utcnow
from app.observability import metrics

logger = logging.getLogger(__name__)

# Backoff: MAIL_RETRY_DELAY, doubled per attempt, at most this; each delay is
# drawn from its upper half (jitter: retries of many mails do not march together).
MAX_RETRY_DELAY = timedelta(hours=1)
# A claim is a lease this much longer than the slowest send SMTP_TIMEOUT allows.
LEASE_MARGIN = timedelta(seconds=30)
SMTP_OPERATIONS_PER_SEND = 6  # connect, EHLO, STARTTLS, AUTH, MAIL/RCPT, DATA


class Composer(Protocol):
    """Composes a mail queued by purpose, at its first attempt: the mail, or why
    none goes out. It may write (a token); the sender commits. The app passes
    app/services/account_mail.compose."""

    async def __call__(
        self, *, db: AsyncSession, settings: Settings, purpose: str | None, recipient: str
    ) -> RenderedMail | str: ...


def enqueue(*, db: AsyncSession, recipient: str, purpose: str) -> None:
    """Queue a mail for the sender to compose (`purpose`, see Composer) and
    deliver; the caller commits, then calls wake_senders()."""
    db.add(MailOutbox(recipient=recipient, compose=purpose))


def enqueue_mail(*, db: AsyncSession, recipient: str, mail: RenderedMail) -> None:
    """Queue a mail composed already (its bodies are dropped once it is sent or
    given up); the caller commits, then calls wake_senders()."""
    db.add(
        MailOutbox(
            recipient=recipient, subject=mail.subject, text_body=mail.text, html_body=mail.html
        )
    )


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """The wait before the next attempt, after `attempts` failed ones."""
    ceiling: timedelta = min(settings.MAIL_RETRY_DELAY * 2 ** (attempts - 1), MAX_RETRY_DELAY)
    jitter = random.uniform(0.5, 1.0)  # noqa: S311 (spreading, not a secret)
    return ceiling * jitter


def lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.SMTP_TIMEOUT * SMTP_OPERATIONS_PER_SEND) + LEASE_MARGIN


async def claim(*, db: AsyncSession, settings: Settings, now: datetime) -> MailOutbox | None:
    """Take the next due mail for one attempt (counted now), leased until the
    attempt can no longer be running; None when nothing is due. The caller commits."""
    due = (
        select(col(MailOutbox.id))
        .where(col(MailOutbox.sent_at).is_(None), col(MailOutbox.next_attempt_at) <= now)
        .order_by(col(MailOutbox.next_attempt_at))
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = await db.exec(
        update(MailOutbox)
        .where(col(MailOutbox.id) == due)
        .values(attempts=col(MailOutbox.attempts) + 1, next_attempt_at=now + lease(settings))
        .returning(MailOutbox)
    )
    row: MailOutbox | None = claimed.scalar_one_or_none()
    return row


async def _finish(
    *, db: AsyncSession, mail_id: int, sent_at: datetime | None, error: str | None
) -> None:
    """Nothing more to do: sent, or given up. The bodies go (they hold a live link)."""
    await db.exec(
        update(MailOutbox)
        .where(col(MailOutbox.id) == mail_id)
        .values(
            sent_at=sent_at, next_attempt_at=None, last_error=error, text_body=None, html_body=None
        )
    )
    await db.commit()


async def _retry_later(*, db: AsyncSession, mail_id: int, when: datetime, error: str) -> None:
    await db.exec(
        update(MailOutbox)
        .where(col(MailOutbox.id) == mail_id)
        .values(next_attempt_at=when, last_error=error)
    )
    await db.commit()


class MailSender:
    """One worker's sender: `run` until cancelled."""

    def __init__(
        self, *, session_factory: SessionFactory, settings: Settings, compose: Composer
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._compose = compose
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due mails now; callable from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Finish the mail in hand, then return from `run`."""
        self._stopping = True
        self.wake()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        poll = self._settings.MAIL_POLL_INTERVAL.total_seconds()
        while not self._stopping:
            self._wake.clear()
            try:
                while not self._stopping and await self.deliver_next():
                    pass
            except Exception:
                # A database outage must not end the sender: the next poll retries.
                logger.exception("mail sender: delivery round failed; next in %.0f s", poll)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def deliver_next(self) -> bool:
        """Claim, compose if needed, and attempt one due mail; False if none was due."""
        settings = self._settings
        async with self._session_factory() as db:
            row = await claim(db=db, settings=settings, now=utcnow())
            if row is None:
                await db.rollback()
                return False
            assert row.id is not None
            mail_id, recipient, attempts = row.id, row.recipient, row.attempts
            if row.subject is None:
                composed = await self._compose(
                    db=db, settings=settings, purpose=row.compose, recipient=recipient
                )
                if isinstance(composed, str):
                    logger.info("mail %d not sent: %s", mail_id, composed)
                    await _finish(db=db, mail_id=mail_id, sent_at=None, error=composed)
                    return True
                row.subject, row.text_body, row.html_body = (
                    composed.subject,
                    composed.text,
                    composed.html,
                )
            mail = RenderedMail(
                subject=row.subject, text=row.text_body or "", html=row.html_body or ""
            )
            await db.commit()
        await self._attempt(mail_id=mail_id, recipient=recipient, attempts=attempts, mail=mail)
        return True

    async def _attempt(
        self, *, mail_id: int, recipient: str, attempts: int, mail: RenderedMail
    ) -> None:
        settings = self._settings
        message = build_message(settings=settings, recipient=recipient, mail=mail)
        try:
            await send_mail(settings=settings, message=message)
        except MailError as exc:
            error = str(exc)
            async with self._session_factory() as db:
                if exc.permanent or attempts >= settings.MAIL_MAX_ATTEMPTS:
                    metrics.MAIL_DELIVERIES.labels("given_up").inc()
                    logger.error("mail %d given up after %d attempts: %s", mail_id, attempts, error)
                    await _finish(db=db, mail_id=mail_id, sent_at=None, error=error)
                    return
                delay = retry_delay(settings, attempts)
                metrics.MAIL_DELIVERIES.labels("retry").inc()
                logger.warning(
                    "mail %d attempt %d failed, next in %.0f s: %s",
                    mail_id,
                    attempts,
                    delay.total_seconds(),
                    error,
                )
                await _retry_later(db=db, mail_id=mail_id, when=utcnow() + delay, error=error)
            return
        async with self._session_factory() as db:
            await _finish(db=db, mail_id=mail_id, sent_at=utcnow(), error=None)
        metrics.MAIL_DELIVERIES.labels("sent").inc()
        logger.info("mail %d sent (attempt %d)", mail_id, attempts)


# On shutdown, how long the mail in hand may take to finish before it is cut off
# (its lease then runs out and another worker sends it again).
STOP_GRACE_SECONDS = 2.0

# The senders running in this process (one per app), woken after a request queued
# a mail: it goes out at once instead of at the next poll.
_running: set[MailSender] = set()


def wake_senders() -> None:
    for sender in list(_running):
        sender.wake()


@asynccontextmanager
async def mail_sender(
    *, session_factory: SessionFactory, settings: Settings, compose: Composer
) -> AsyncIterator[MailSender | None]:
    """The sender runs in the background while the context lasts. Without
    SMTP_HOST none runs: mails stay queued (said once, here) until a worker with
    a host starts."""
    if not settings.SMTP_HOST:
        logger.warning("SMTP_HOST is not set: mails stay queued in mail_outbox, none is sent")
        yield None
        return
    sender = MailSender(session_factory=session_factory, settings=settings, compose=compose)
    task = asyncio.create_task(sender.run(), name="mail-sender")
    _running.add(sender)
    try:
        yield sender
    finally:
        _running.discard(sender)
        sender.stop()
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
