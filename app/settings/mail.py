"""Outgoing mail and the mailed links: password recovery, email verification."""

from datetime import timedelta
from email.utils import parseaddr
from typing import ClassVar, Literal

from pydantic import SecretStr, field_validator

from app.settings.base import SettingsGroup
from app.settings.declaration import setting
from app.settings.types import PositiveDuration


class MailSettings(SettingsGroup):
    """Requests only queue mails (the mail_outbox table); each app worker sends them
    in the background with retries, so a slow or failing SMTP server never slows or
    fails a request. Empty SMTP_HOST: mails stay queued (a warning is logged) and go
    out once a worker starts with a host. Links point at https://<DOMAIN>/.

    Amazon SES: SMTP_HOST='email-smtp.eu-west-1.amazonaws.com', SMTP_PORT='587',
      SMTP_SECURITY='starttls', SMTP_USER/SMTP_PASSWORD = the SES SMTP credentials.

    Gmail / Google Workspace: SMTP_HOST='smtp.gmail.com', SMTP_PORT='587' (starttls)
      or '465' with SMTP_SECURITY='tls', SMTP_USER = the address, SMTP_PASSWORD = an
      app password (Google account > Security > App passwords; needs 2-step).

    The local stack's mail catcher (COMPOSE_PROFILES='mail-catcher'):
      SMTP_HOST='mailcatcher', SMTP_PORT='1025', SMTP_SECURITY='none' (`make .env`
      writes these for a new local .env)."""

    TITLE: ClassVar[str] = "Mail"

    SMTP_HOST: str = setting(
        "", "The SMTP server mails go to; empty: mails stay queued in mail_outbox."
    )
    SMTP_PORT: int = setting(
        587, "587 with starttls (submission), 465 with tls, 25 or 1025 with none.", ge=1, le=65535
    )
    SMTP_USER: str = setting("", "SMTP AUTH user; empty: no AUTH.")
    SMTP_PASSWORD: SecretStr = setting(SecretStr(""), "SMTP AUTH password.")
    SMTP_SECURITY: Literal["starttls", "tls", "none"] = setting(
        "starttls",
        "starttls (port 587: plain connect, then STARTTLS, required) | tls (port 465: "
        "TLS from the first byte) | none (only for a local catcher: no encryption). "
        "The server's certificate is always verified.",
    )
    SMTP_CA_FILE: str = setting(
        "",
        "PEM file of the CA(s) that sign the SMTP server's certificate, for a relay "
        "with a private CA; empty: the system's CAs (every public provider).",
    )
    SMTP_TIMEOUT: float = setting(10.0, "Seconds for each SMTP network operation.", gt=0)
    EMAILS_FROM: str = setting(
        "",
        "The From header: 'Name <address>' or an address; empty: '<PROJECT_NAME> "
        "<noreply@DOMAIN>'. Your provider must allow this sender (SES: a verified "
        "identity).",
    )
    MAIL_MAX_ATTEMPTS: int = setting(
        8, "Attempts per mail before it is given up (its last error kept).", ge=1
    )
    MAIL_RETRY_DELAY: PositiveDuration = setting(
        timedelta(seconds=30),
        "The first retry's delay, then doubling, with jitter, at most an hour.",
    )
    MAIL_POLL_INTERVAL: PositiveDuration = setting(
        timedelta(seconds=2),
        "How often each worker looks for mails other workers queued (its own go out at once).",
    )
    PASSWORD_RESET_TTL: PositiveDuration = setting(
        timedelta(minutes=30), "How long a password-reset link works."
    )
    EMAIL_VERIFY_TTL: PositiveDuration = setting(
        timedelta(days=2),
        "How long an email-verification link works (and an email change's confirmation link).",
    )
    LOGIN_REQUIRES_VERIFIED_EMAIL: bool = setting(
        False,
        "'false': unverified accounts log in (the user shows is_verified: false). "
        "'true': their login answers 403 saying why; the link can be requested again.",
    )
    EMAIL_CHANGE_UNDO_TTL: PositiveDuration = setting(
        timedelta(days=7),
        'How long the "this wasn\'t me" link mailed to the old address after an '
        "email change works (it keeps working after the change went through).",
    )
    MAIL_REQUESTS_PER_EMAIL: int = setting(
        3,
        "Mails anyone may ask for (password recovery, verification resend): at most "
        "this many per email address and client address within MAIL_REQUEST_WINDOW; "
        "then 429 (a stranger spends only their own share).",
        ge=1,
    )
    MAIL_REQUESTS_PER_CLIENT: int = setting(20, "The same, per client address.", ge=1)
    MAIL_PER_ADDRESS_MAX: int = setting(
        10,
        "Mails of any kind to one address within MAIL_REQUEST_WINDOW, from every flow "
        "and client (recovery, resend, registration, email change, notices). At the "
        "ceiling an email change is a 429, a verification mail is not sent, and a "
        "security notice is still sent.",
        ge=1,
    )
    MAIL_REQUEST_WINDOW: PositiveDuration = setting(
        timedelta(hours=1), "The window of the mail limits above."
    )

    @field_validator("EMAILS_FROM")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        if value and "@" not in parseaddr(value)[1]:
            raise ValueError("EMAILS_FROM is an address, optionally 'Name <address>'")
        return value
