"""bcrypt hashing, always on a worker thread. The only module that imports bcrypt."""

from functools import lru_cache

import anyio.to_thread
import bcrypt

# bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_LENGTH = 8


def password_problem(password: str) -> str | None:
    """Why a new password is unacceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"Password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)"
    return None


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def _matches(password: str, hashed: str) -> bool:
    encoded = password.encode()
    if len(encoded) > MAX_PASSWORD_BYTES:
        # Spend the same time as a real check, then fail: no length oracle.
        bcrypt.checkpw(b"x", hashed.encode())
        return False
    return bcrypt.checkpw(encoded, hashed.encode())


@lru_cache
def _dummy_hash(rounds: int) -> str:
    return _hash("not-a-real-password", rounds)


async def hash_password(password: str, *, rounds: int) -> str:
    return await anyio.to_thread.run_sync(_hash, password, rounds)


async def verify_password(password: str, hashed: str) -> bool:
    return await anyio.to_thread.run_sync(_matches, password, hashed)


async def verify_against_dummy(password: str, *, rounds: int) -> None:
    """For an unknown email: cost what a real check costs, so timing reveals nothing."""
    dummy = await anyio.to_thread.run_sync(_dummy_hash, rounds)
    await verify_password(password, dummy)
