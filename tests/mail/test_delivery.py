"""Delivery: a request never waits for SMTP; the sender retries with backoff,
gives up when it must, keeps every error, survives restarts (at least once), never
sends a mail twice from two workers, and speaks STARTTLS and TLS."""

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.mail import outbox as outbox_service
from app.models import utcnow
from tests.conftest import app_with, client_at, register
from tests.mail.helpers import execute, mail_app, outbox
from tests.mail.smtp_server import (
    SmtpServer,
    link_of,
    self_signed_certificate,
    server_context,
    settings_for,
)


async def wait_until(app: FastAPI, check: Any, within: float = 10.0) -> list[dict[str, Any]]:
    """The outbox once `check(rows)` holds (bounded wait)."""
    deadline = time.monotonic() + within
    while not check(rows := await outbox(app)):
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
    return rows


async def test_smtp_down_answers_at_once_and_the_mail_goes_when_it_is_back(
    settings: Settings,
) -> None:
    server = SmtpServer()  # not started: nothing listens on its port
    async with mail_app(settings, server) as (app, http):
        started = time.monotonic()
        await register(http)
        asked = await http.post("/api/auth/password-recovery", json={"email": "ada@example.com"})
        assert asked.status_code == 202
        assert time.monotonic() - started < 2.0
        rows = await wait_until(app, lambda rows: all(row["attempts"] >= 2 for row in rows))
        assert all("ConnectionRefusedError" in row["last_error"] for row in rows)
        assert all(row["sent_at"] is None for row in rows)
        server.start()
        try:
            mails = await server.wait_for_mails("ada@example.com", 2, within=15)
            assert {mail["Subject"].split(" for ")[0] for mail in mails} == {
                "Confirm your email address",
                "Reset your password",
            }
        finally:
            server.stop()


async def test_a_refusing_server_is_retried_with_backoff_then_delivers(
    settings: Settings, smtp: SmtpServer
) -> None:
    smtp.collector.reply = "451 4.3.0 Try again later"
    async with mail_app(settings, smtp, MAIL_RETRY_DELAY=timedelta(seconds=0.3)) as (app, http):
        await register(http)
        [row] = await wait_until(app, lambda rows: rows and rows[0]["attempts"] >= 3)
        assert row["last_error"] == "SMTPDataError: 451 4.3.0 Try again later"
        # Backoff: 0.3 s, then 0.6 s (each drawn from its upper half) before the third.
        created_to_third = row["next_attempt_at"] - row["created_at"]
        assert created_to_third >= timedelta(seconds=0.15 + 0.3)
        smtp.collector.reply = None
        await smtp.wait_for_mail("ada@example.com", within=15)
        [row] = await wait_until(app, lambda rows: rows[0]["sent_at"] is not None)
        assert row["attempts"] == smtp.collector.refused + 1
        assert row["next_attempt_at"] is None


async def test_a_permanent_refusal_is_given_up_at_once(
    settings: Settings, smtp: SmtpServer
) -> None:
    smtp.collector.reply = "550 5.1.1 No such mailbox"
    async with mail_app(settings, smtp) as (app, http):
        await register(http)
        [row] = await wait_until(app, lambda rows: rows and rows[0]["next_attempt_at"] is None)
        assert row["attempts"] == 1
        assert row["sent_at"] is None
        assert row["last_error"] == "SMTPDataError: 550 5.1.1 No such mailbox"
        assert row["text_body"] is None  # the link it held is gone


async def test_after_mail_max_attempts_the_mail_is_given_up(
    settings: Settings, smtp: SmtpServer
) -> None:
    smtp.collector.reply = "421 4.7.0 Busy"
    async with mail_app(settings, smtp, MAIL_MAX_ATTEMPTS=3) as (app, http):
        await register(http)
        [row] = await wait_until(app, lambda rows: rows and rows[0]["next_attempt_at"] is None)
        assert row["attempts"] == 3
        assert smtp.collector.refused == 3
        assert row["last_error"] == "SMTPDataError: 421 4.7.0 Busy"


async def test_mails_queued_without_smtp_go_out_from_the_next_worker(
    settings: Settings, app: FastAPI, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    """The suite's app has no SMTP_HOST: its mails stay queued; a worker started
    later with a host (a restart, a new release) delivers them."""
    await register(client)
    await client.post("/api/auth/password-recovery", json={"email": "ada@example.com"})
    await asyncio.sleep(0.3)
    assert [row["attempts"] for row in await outbox(app)] == [0, 0]
    async with mail_app(settings, smtp) as (worker, _):
        await smtp.wait_for_mails("ada@example.com", 2)
        await wait_until(worker, lambda rows: all(row["sent_at"] for row in rows))


async def test_a_mail_whose_worker_died_mid_send_is_sent_again(
    settings: Settings, app: FastAPI, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    """At least once: a claim is a lease. A worker that claimed the mail and died
    never marked it; once the lease runs out another worker sends it."""
    await register(client)
    async with app.state.session_factory() as db:
        claimed = await outbox_service.claim(db=db, settings=settings, now=utcnow())
        assert claimed is not None
        await db.commit()  # ...and the worker dies here, before sending
    async with mail_app(settings, smtp) as (worker, _):
        await asyncio.sleep(0.3)
        assert smtp.collector.messages == []  # leased: nobody else takes it
        await execute(worker, "UPDATE mail_outbox SET next_attempt_at = now()")  # lease over
        await smtp.wait_for_mail("ada@example.com")
        [row] = await wait_until(worker, lambda rows: rows[0]["sent_at"] is not None)
        assert row["attempts"] == 2


async def test_two_workers_send_each_mail_exactly_once(
    settings: Settings, app: FastAPI, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    addresses = [f"user{n}@example.com" for n in range(12)]
    for address in addresses:
        await register(client, address)
    async with mail_app(settings, smtp) as (first, _), mail_app(settings, smtp) as (_second, _):
        await wait_until(first, lambda rows: all(row["sent_at"] for row in rows), within=20)
    assert sorted(mail["To"] for mail in smtp.collector.messages) == sorted(addresses)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


async def test_starttls_is_required_and_verified(
    settings: Settings, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    server = SmtpServer(
        options={"tls_context": server_context(cert, key), "require_starttls": True}
    )
    server.start()
    try:
        async with mail_app(settings, server, SMTP_SECURITY="starttls", SMTP_CA_FILE=str(cert)) as (
            _,
            http,
        ):
            await register(http)
            link_of(await server.wait_for_mail("ada@example.com"))
        # A certificate the client does not trust: refused, nothing sent.
        (tmp_path / "other").mkdir()
        other_ca, _ = self_signed_certificate(tmp_path / "other")
        async with mail_app(
            settings, server, SMTP_SECURITY="starttls", SMTP_CA_FILE=str(other_ca)
        ) as (app, http):
            await register(http, "bob@example.com")
            rows = await wait_until(app, lambda rows: len(rows) == 2 and rows[1]["last_error"])
            assert "CERTIFICATE_VERIFY_FAILED" in rows[1]["last_error"]
        assert server.mails_to("bob@example.com") == []
    finally:
        server.stop()


async def test_implicit_tls_delivers(settings: Settings, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server = SmtpServer(options={"ssl_context": server_context(cert, key)})
    server.start()
    try:
        async with mail_app(settings, server, SMTP_SECURITY="tls", SMTP_CA_FILE=str(cert)) as (
            _,
            http,
        ):
            await register(http)
            await server.wait_for_mail("ada@example.com")
    finally:
        server.stop()


async def test_plain_smtp_to_a_server_that_requires_starttls_sends_nothing(
    settings: Settings, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server = SmtpServer(
        options={"tls_context": server_context(cert, key), "require_starttls": True}
    )
    server.start()
    try:
        async with (
            app_with(settings, **settings_for(server, MAIL_MAX_ATTEMPTS=1)) as app,
            client_at(app, "203.0.113.9") as http,
        ):
            await register(http)
            [row] = await wait_until(app, lambda rows: rows and rows[0]["next_attempt_at"] is None)
            assert "530" in row["last_error"]
        assert server.collector.messages == []
    finally:
        server.stop()


def only(login: bytes, password: bytes) -> Any:
    """An aiosmtpd authenticator accepting one login and password."""

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        accepted = isinstance(data, LoginPassword) and (data.login, data.password) == (
            login,
            password,
        )
        return AuthResult(success=accepted, handled=False)  # False: aiosmtpd answers 535

    return authenticate


async def test_smtp_auth_after_starttls_and_a_wrong_password_is_retried(
    settings: Settings, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server = SmtpServer(
        options={
            "tls_context": server_context(cert, key),
            "require_starttls": True,
            "authenticator": only(b"mailer@example.com", b"app password 1234"),
            "auth_required": True,
            "auth_require_tls": True,
        }
    )
    server.start()
    secure = {"SMTP_SECURITY": "starttls", "SMTP_CA_FILE": str(cert)}
    try:
        async with mail_app(
            settings,
            server,
            SMTP_USER="mailer@example.com",
            SMTP_PASSWORD=SecretStr("not the password"),
            **secure,
        ) as (app, http):
            await register(http)
            [row] = await wait_until(app, lambda rows: rows and rows[0]["attempts"] >= 2)
            assert "535" in row["last_error"]
        assert server.collector.messages == []
        # The operator fixes the password: the next worker delivers the same mail.
        async with mail_app(
            settings,
            server,
            SMTP_USER="mailer@example.com",
            SMTP_PASSWORD=SecretStr("app password 1234"),
            **secure,
        ) as (app, _):
            await execute(app, "UPDATE mail_outbox SET next_attempt_at = now()")
            await server.wait_for_mail("ada@example.com")
    finally:
        server.stop()


async def test_a_mail_queued_by_a_request_leaves_at_once_not_at_the_next_poll(
    settings: Settings, smtp: SmtpServer
) -> None:
    """The worker that queued it is woken after the commit: well under the
    default MAIL_POLL_INTERVAL (2 s) between the answer and the mail."""
    async with mail_app(settings, smtp, MAIL_POLL_INTERVAL=timedelta(seconds=2)) as (_, http):
        await asyncio.sleep(0.2)  # the sender's first look is done: it is waiting
        await register(http)
        answered = time.monotonic()
        await smtp.wait_for_mail("ada@example.com")
        assert time.monotonic() - answered < 1.0
