"""API keys (personal access tokens): what one looks like, and how it is stored.

A key is `fsk_` (FastAPI Stack Key), 30 random base62 characters (178 bits)
and a 6-character base62 CRC32 of them, as GitHub's tokens are built: a secret
scanner recognises one by its prefix and tells it from look-alikes by its
checksum, and a mistyped key is refused without a query. The database holds
only its SHA-256 (a key is far too random to guess from it; no bcrypt: a hash
lookup is the whole verification) and a short display prefix.
"""

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "fsk_"
BODY_LENGTH: Final = 30
CHECKSUM_LENGTH: Final = 6
# What a list shows of a key: the prefix and the first characters of its body.
DISPLAY_LENGTH: Final = len(PREFIX) + 6
BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PATTERN: Final = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{BODY_LENGTH + CHECKSUM_LENGTH}}}")


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key as created: shown once (`key`); stored as `key_hash` and `prefix`."""

    key: str

    @property
    def key_hash(self) -> str:
        return hash_key(self.key)

    @property
    def prefix(self) -> str:
        return self.key[:DISPLAY_LENGTH]


def generate() -> NewKey:
    body = "".join(secrets.choice(BASE62) for _ in range(BODY_LENGTH))
    return NewKey(key=f"{PREFIX}{body}{_checksum(body)}")


def looks_like_key(token: str) -> bool:
    """Whether a bearer credential is meant as an API key (its prefix): it is then
    checked as one, never as a JWT."""
    return token.startswith(PREFIX)


def is_well_formed(key: str) -> bool:
    """Prefix, alphabet, length and checksum: a key this app could have issued."""
    if not PATTERN.fullmatch(key):
        return False
    body, checksum = key[len(PREFIX) : -CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(_checksum(body), checksum)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()
