"""Throttling of guesses: an attempt is counted before its proof (a password) is checked.

Each attempt reserves one row under each of its keys, in a transaction that holds
a Postgres advisory lock per key while it counts: of any number of concurrent
attempts, no more than the limit get through to bcrypt. A failed attempt's row
stays as the failure; a successful one removes its own rows.

The keys of a login (app/settings/auth.py has the numbers):
- a known device (the device cookie of an earlier successful login of this
  account, issued since its last session-ending change): its own failures, so
  nobody else's can lock it out (its success forgives them), and those of all
  the account's known devices together (LOGIN_DEVICE_ACCOUNT_MAX_FAILURES), so
  a pile of cookies is not a pile of fresh allowances;
- otherwise (email, client address) and the account alone: at most
  LOGIN_ACCOUNT_MAX_FAILURES guesses an hour reach an account from all addresses
  together. A success does not forgive these (it may be a stranger's burst at the
  same address), and a stranger who exhausts them locks out only unknown devices.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.tokens import DeviceToken
from app.config import Settings
from app.exceptions import TooManyAttempts
from app.models import LoginFailure, utcnow


@dataclass(frozen=True, slots=True)
class Limit:
    key: str
    max_failures: int
    window: timedelta
    # Whether a success forgives the failures counted before it under this key.
    cleared_by_success: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """The rows one attempt reserved, by key."""

    rows: dict[Limit, int]


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def login_limits(
    *,
    settings: Settings,
    identity: str,
    client: str,
    user_id: int | None,
    device: DeviceToken | None,
) -> list[Limit]:
    """`identity` is who the sign-in says it is, whatever its proof (the
    normalised email for a password); `device` is the caller's device cookie, if
    it marks a known device of the account (app/auth/service.py)."""
    per_client = (settings.LOGIN_MAX_FAILURES, settings.LOGIN_FAILURE_WINDOW)
    if device is not None and user_id is not None and device.user_id == user_id:
        return [
            Limit(_digest("device", str(device.device_id)), *per_client, True),
            # Known devices are many cookies, not one: together they are capped too.
            Limit(
                _digest("account-devices", str(user_id)),
                settings.LOGIN_DEVICE_ACCOUNT_MAX_FAILURES,
                settings.LOGIN_ACCOUNT_FAILURE_WINDOW,
                False,
            ),
        ]
    return [
        Limit(_digest("client", identity, client), *per_client, False),
        Limit(
            _digest("account", identity),
            settings.LOGIN_ACCOUNT_MAX_FAILURES,
            settings.LOGIN_ACCOUNT_FAILURE_WINDOW,
            False,
        ),
    ]


def password_change_limits(*, settings: Settings, user_id: int) -> list[Limit]:
    """Guesses of the current password by a holder of the user's access token."""
    return [
        Limit(
            _digest("password-change", str(user_id)),
            settings.LOGIN_MAX_FAILURES,
            settings.LOGIN_FAILURE_WINDOW,
            True,
        )
    ]


def second_factor_limits(*, settings: Settings, user_id: int) -> list[Limit]:
    """Guesses of a second-factor code by a holder of the user's session (to
    confirm, disable or renew it): a stolen session cannot try the million codes."""
    return [
        Limit(
            _digest("second-factor", str(user_id)),
            settings.LOGIN_MAX_FAILURES,
            settings.LOGIN_FAILURE_WINDOW,
            True,
        )
    ]


def mail_address_limit(*, settings: Settings, email: str) -> Limit:
    """Every mail to an address, whatever flow sends it and whoever asked: the
    address's own ceiling."""
    return Limit(
        _digest("mail-address", email),
        settings.MAIL_PER_ADDRESS_MAX,
        settings.MAIL_REQUEST_WINDOW,
        False,
    )


def mail_client_limit(*, settings: Settings, client: str) -> Limit:
    """Mails one client address causes, to any address."""
    return Limit(
        _digest("mail-client", client),
        settings.MAIL_REQUESTS_PER_CLIENT,
        settings.MAIL_REQUEST_WINDOW,
        False,
    )


def mail_request_limits(*, settings: Settings, email: str, client: str) -> list[Limit]:
    """Mails anyone may ask for (recovery, verification): per address asked for
    from this client (a client's share of the address, so a stranger spends only
    their own), per address from everyone, and per client. Every request counts,
    known address or not."""
    return [
        Limit(
            _digest("mail", email, client),
            settings.MAIL_REQUESTS_PER_EMAIL,
            settings.MAIL_REQUEST_WINDOW,
            False,
        ),
        mail_address_limit(settings=settings, email=email),
        mail_client_limit(settings=settings, client=client),
    ]


async def reserve(
    *, db: AsyncSession, limits: list[Limit], error: type[TooManyAttempts] = TooManyAttempts
) -> Attempt:
    """Count an attempt under every key, or raise `error`; the caller commits
    (the locks are held until then)."""
    now = utcnow()
    rows: dict[Limit, int] = {}
    # A fixed lock order: two attempts sharing keys never deadlock.
    for limit in sorted(limits, key=lambda limit: limit.key):
        await db.exec(select(func.pg_advisory_xact_lock(func.hashtextextended(limit.key, 0))))
        since = now - limit.window
        await db.exec(
            delete(LoginFailure).where(
                col(LoginFailure.key) == limit.key, col(LoginFailure.failed_at) <= since
            )
        )
        count, oldest = (
            await db.exec(
                select(func.count(), func.min(col(LoginFailure.failed_at))).where(
                    col(LoginFailure.key) == limit.key
                )
            )
        ).one()
        if count >= limit.max_failures:
            retry_after = oldest + limit.window - now
            raise error(retry_after_seconds=max(1, int(retry_after.total_seconds()) + 1))
        row_id = (
            await db.exec(
                insert(LoginFailure)
                .values(key=limit.key, failed_at=now)
                .returning(col(LoginFailure.id))
            )
        ).scalar_one()
        rows[limit] = row_id
    return Attempt(rows=rows)


async def charge(*, db: AsyncSession, limits: list[Limit]) -> None:
    """Count something under the keys without refusing it (a notice the account
    must get whatever the count); the caller commits."""
    now = utcnow()
    for limit in limits:
        await db.exec(insert(LoginFailure).values(key=limit.key, failed_at=now))


async def forgive(*, db: AsyncSession, attempt: Attempt) -> None:
    """The attempt succeeded: remove its rows, and under keys that a success clears,
    the failures counted before it. The caller commits."""
    for limit, row_id in attempt.rows.items():
        condition = (
            col(LoginFailure.id) <= row_id
            if limit.cleared_by_success
            else col(LoginFailure.id) == row_id
        )
        await db.exec(delete(LoginFailure).where(col(LoginFailure.key) == limit.key, condition))
