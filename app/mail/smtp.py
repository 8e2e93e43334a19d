"""One mail over SMTP, with the standard library's smtplib on a worker thread.

STARTTLS (port 587) and implicit TLS (465) verify the server's certificate and
name against the system's CAs (or SMTP_CA_FILE's, in tests); `none` is for a
local catcher only. A failure raises MailError, which says whether trying again
later can help.
"""

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from opentelemetry import trace

from app.config import Settings
from app.mail.render import RenderedMail


class MailError(Exception):
    """Delivery failed. `permanent`: the server refused this mail for good (a 5xx
    for its recipient or content); anything else may pass on a later attempt."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def build_message(*, settings: Settings, recipient: str, mail: RenderedMail) -> EmailMessage:
    """A multipart/alternative mail: the plain text first, the HTML preferred."""
    message = EmailMessage()
    message["From"] = settings.emails_from
    message["To"] = recipient
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=settings.DOMAIN)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def _tls_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.SMTP_CA_FILE or None)


def _send(settings: Settings, message: EmailMessage) -> None:
    host, port, timeout = settings.SMTP_HOST, settings.SMTP_PORT, settings.SMTP_TIMEOUT
    client: smtplib.SMTP
    if settings.SMTP_SECURITY == "tls":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls_context(settings))
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if settings.SMTP_SECURITY == "starttls":
            # Required, never opportunistic: starttls() raises if the server does
            # not offer it, so credentials and links never cross in the clear.
            client.starttls(context=_tls_context(settings))
        if settings.SMTP_USER:
            client.login(settings.SMTP_USER, settings.SMTP_PASSWORD.get_secret_value())
        client.send_message(message)


def _is_permanent(exc: Exception) -> bool:
    """A 5xx refusing the recipients or the content will not change by retrying;
    a 5xx to the login (wrong credentials) may, once the operator fixes them."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError | smtplib.SMTPSenderRefused):
        return exc.smtp_code >= 500
    return False


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"SMTPRecipientsRefused: {codes}"
    return f"{type(exc).__name__}: {exc}"


_tracer = trace.get_tracer(__name__)


async def send_mail(*, settings: Settings, message: EmailMessage) -> None:
    """Deliver one mail to SMTP_HOST, or raise MailError saying why not. A span
    when tracing is on (no OpenTelemetry instrumentation knows smtplib)."""
    try:
        with _tracer.start_as_current_span(
            "smtp send",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "server.address": settings.SMTP_HOST or "",
                "server.port": settings.SMTP_PORT,
            },
        ):
            await asyncio.to_thread(_send, settings, message)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(_describe(exc)[:1000], permanent=_is_permanent(exc)) from exc
