"""CSRF tokens for cookie sessions: OWASP's *signed double-submit cookie*.

A token is a random nonce and an HMAC over the session's id and that nonce,
keyed by a key derived from SECRET_KEY (never the JWT key itself: its own label).
Only this server can make one, and one made for a session is worthless in any
other, another login of the same user included. A request authenticated by the
access cookie proves it comes from the app's own pages by sending the token in a
header equal to the CSRF cookie: another site can make the browser send the
cookies, but can neither read them nor set the header.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import uuid

from app.config import Settings
from app.exceptions import CsrfTokenInvalid, CsrfTokenMissing

NONCE_BYTES = 16
# A genuine token is 66 characters: anything much longer is not one, unread.
MAX_TOKEN_LENGTH = 128
_KEY_LABEL = b"fastapi-stack csrf token v1"


@functools.lru_cache(maxsize=16)
def _derived_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _keys(settings: Settings) -> list[bytes]:
    """The current key first; previous secrets still verify (a rotation of
    SECRET_KEY must not refuse every browser's next write)."""
    given = [settings.SECRET_KEY, *settings.SECRET_KEY_PREVIOUS]
    return [_derived_key(secret.get_secret_value()) for secret in given]


def _mac(key: bytes, session_id: uuid.UUID, nonce: bytes) -> bytes:
    # Both parts have a fixed length (16 bytes each): their concatenation is unambiguous.
    return hmac.new(key, session_id.bytes + nonce, hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(settings: Settings, session_id: uuid.UUID) -> str:
    """A new token for the session, signed with the current key."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return f"{_encode(nonce)}.{_encode(_mac(_keys(settings)[0], session_id, nonce))}"


def is_valid_for(settings: Settings, session_id: uuid.UUID, token: str) -> bool:
    """Whether the token was made by this server for this session."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return False
    nonce_text, mac_text = token.split(".")
    try:
        nonce, mac = _decode(nonce_text), _decode(mac_text)
    except (binascii.Error, ValueError):  # not base64, or not ASCII
        return False
    if len(nonce) != NONCE_BYTES:
        return False
    return any(hmac.compare_digest(mac, _mac(key, session_id, nonce)) for key in _keys(settings))


def _bytes(text: str) -> bytes:
    # Header and cookie values arrive as Latin-1 text; compare_digest wants bytes.
    return text.encode("utf-8", "surrogatepass")


def check(
    settings: Settings, session_id: uuid.UUID, *, header: str | None, cookie: str | None
) -> None:
    """The request's header must hold the CSRF cookie's value, and that value
    must be this session's token; else CsrfTokenMissing or CsrfTokenInvalid (403)."""
    if not header:
        raise CsrfTokenMissing()
    if not cookie or not hmac.compare_digest(_bytes(header), _bytes(cookie)):
        raise CsrfTokenInvalid()
    if not is_valid_for(settings, session_id, header):
        raise CsrfTokenInvalid()
