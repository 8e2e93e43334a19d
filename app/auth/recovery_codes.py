"""Recovery codes: single-use stand-ins for the authenticator, shown once, kept as
their SHA-256 only.

A code is 80 random bits (`secrets`), written as 16 base32 characters in four
groups (`k7qm-2xzp-…`: no 0/O or 1/I/l to misread). A fast unsalted hash is
enough at that entropy: a leaked table gives 2^80 candidates per code to try, out
of reach of any offline search, which is what bcrypt's cost buys for the short
secrets people choose. A presented code is read loosely: case, spaces and dashes
do not matter.
"""

import base64
import hashlib
import secrets

COUNT = 10
CODE_BYTES = 10  # 80 bits: 16 base32 characters
GROUP = 4


def new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().lower()
    return "-".join(raw[start : start + GROUP] for start in range(0, len(raw), GROUP))


def new_codes() -> list[str]:
    return [new_code() for _ in range(COUNT)]


def normalized(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def looks_like_one(code: str) -> bool:
    """Whether `code` has a recovery code's shape (else it may be a TOTP code)."""
    return len(normalized(code)) == CODE_BYTES * 8 // 5


def digest(code: str) -> str:
    return hashlib.sha256(normalized(code).encode("utf-8", "surrogatepass")).hexdigest()
