"""TOTP (RFC 6238): the secret, its codes, and the secret at rest. The one module
that imports pyotp and segno.

The parameters are the ones every authenticator app assumes when the otpauth URI
names no others: HMAC-SHA1, 6 digits, 30-second steps. A code is accepted for the
current step or one step either side (clock drift), and only for a step after the
last one accepted: the caller stores the step it returns (a conditional UPDATE),
so a code works once, even twice at the same instant.
"""

import io
from datetime import UTC, datetime

import pyotp
from cryptography.fernet import InvalidToken, MultiFernet
from pyotp.exceptions import OTPVerificationError

DIGITS = 6
STEP_SECONDS = 30
# Steps accepted either side of the current one: a phone's clock a little off,
# or a code typed as it turned over.
DRIFT_STEPS = 1
# 32 base32 characters: 160 bits, the HMAC-SHA1 key size RFC 4226 recommends.
SECRET_LENGTH = 32


class UnreadableSecret(ValueError):
    """A stored secret that no TOTP_ENCRYPTION_KEYS key decrypts (a key dropped
    before its secrets were re-encrypted, or a row altered)."""


def clock() -> datetime:
    """Now, as the codes are checked against it (the tests set it)."""
    return datetime.now(UTC)


def new_secret() -> str:
    """A random base32 secret (from `secrets`)."""
    return pyotp.random_base32(SECRET_LENGTH)


def _totp(secret: str, digits: int = DIGITS) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=digits, interval=STEP_SECONDS)


def step_at(moment: datetime) -> int:
    """The time step (Unix time // 30) a moment falls in, as pyotp counts it."""
    return int(moment.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int, *, digits: int = DIGITS) -> str:
    return _totp(secret, digits).generate_otp(step)


def accepted_step(
    secret: str, code: str, *, after_step: int, at: datetime | None = None, digits: int = DIGITS
) -> int | None:
    """The step `code` belongs to, within DRIFT_STEPS of `at` (now) and after
    `after_step` (the last one accepted), or None. Compared in constant time."""
    code = code.strip().replace(" ", "")
    if len(code) != digits or not code.isascii() or not code.isdigit():
        return None
    try:
        step = _totp(secret, digits).verify_and_get_timecode(
            code, for_time=at or clock(), valid_window=DRIFT_STEPS
        )
    except OTPVerificationError:
        return None
    return step if step > after_step else None


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (Google's Key Uri Format)."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an SVG document a page can show as it is."""
    # Imported here, not at start-up: only a setup draws a QR code, and segno's
    # writers would sit in every worker's memory for it (~1 MB).
    import segno

    buffer = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(buffer, kind="svg", scale=4, border=4)
    return buffer.getvalue().decode()


def encrypt(cipher: MultiFernet, secret: str) -> str:
    return cipher.encrypt(secret.encode()).decode()


def decrypt(cipher: MultiFernet, encrypted: str) -> str:
    try:
        return cipher.decrypt(encrypted.encode()).decode()
    except InvalidToken as exc:
        raise UnreadableSecret("no TOTP_ENCRYPTION_KEYS key decrypts this secret") from exc


def reencrypt(cipher: MultiFernet, encrypted: str) -> str:
    """The secret encrypted again with the first key (any key may have encrypted it)."""
    try:
        return cipher.rotate(encrypted.encode()).decode()
    except InvalidToken as exc:
        raise UnreadableSecret("no TOTP_ENCRYPTION_KEYS key decrypts this secret") from exc
