"""A real SMTP server in the test process (aiosmtpd, on its own thread and event
loop), collecting what it receives; it can refuse mail, require STARTTLS, speak
implicit TLS, be stopped and started again on the same port."""

import asyncio
import datetime
import ipaddress
import re
import ssl
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.embedded_postgres import free_port

HOST = "127.0.0.1"
LINK = re.compile(r"https://[^\s\"<>]+#token=([A-Za-z0-9_-]+)")


class Collector:
    """aiosmtpd's handler: keeps each mail, or answers `reply` (e.g. a 451)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.reply: str | None = None
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if self.reply is not None:
            self.refused += 1
            return self.reply
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int = field(default_factory=free_port)
    collector: Collector = field(default_factory=Collector)
    controller: Controller | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.controller = Controller(
            self.collector, hostname=HOST, port=self.port, ready_timeout=10, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [mail for mail in self.collector.messages if mail["To"] == address]

    async def wait_for_mails(
        self, address: str, count: int = 1, within: float = 10.0
    ) -> list[EmailMessage]:
        """The mails to `address` once `count` have arrived (bounded wait)."""
        deadline = time.monotonic() + within
        while len(self.mails_to(address)) < count:
            assert time.monotonic() < deadline, f"no {count} mail(s) to {address} in {within} s"
            await asyncio.sleep(0.02)
        return self.mails_to(address)

    async def wait_for_mail(self, address: str, within: float = 10.0) -> EmailMessage:
        return (await self.wait_for_mails(address, 1, within))[-1]


def bodies(mail: EmailMessage) -> tuple[str, str]:
    """The plain-text and the HTML body of a multipart/alternative mail."""
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert text_part is not None
    assert html_part is not None
    return text_part.get_content(), html_part.get_content()


def link_of(mail: EmailMessage) -> tuple[str, str]:
    """The link the mail carries (the same in both bodies) and its token."""
    text, html = bodies(mail)
    found = LINK.search(text)
    assert found is not None, text
    assert found.group(0) in html
    return found.group(0), found.group(1)


def settings_for(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    """Settings pointing an app at the server: plain SMTP, prompt polls and retries
    (app_with copies settings without validating: durations as timedelta)."""
    return {
        "SMTP_HOST": HOST,
        "SMTP_PORT": server.port,
        "SMTP_SECURITY": "none",
        "SMTP_TIMEOUT": 5.0,
        "MAIL_POLL_INTERVAL": datetime.timedelta(seconds=0.1),
        "MAIL_RETRY_DELAY": datetime.timedelta(seconds=0.2),
        **overrides,
    }


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key: the
    certificate is also the CA file a client trusts it with."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
