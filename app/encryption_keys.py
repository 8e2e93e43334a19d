"""The keys that encrypt secrets the database must hold in a form it can read back
(a TOTP seed: it cannot be hashed, the server computes codes from it), read once
from the settings (app/settings/auth.py builds the cipher when it loads, so a bad
key stops start-up, never a request).

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`): authenticated, so a
row altered in the database fails to decrypt instead of yielding another seed.
They are not the signing keys: a leaked SECRET_KEY mints tokens but reads no
seed, and the other way round. A list, like SECRET_KEY and SECRET_KEY_PREVIOUS:
the first key encrypts, every key decrypts, so a rotation is prepend the new key,
re-encrypt (`python -m app.auth.totp_rotate`), then drop the old one.
"""

from collections.abc import Sequence

from cryptography.fernet import Fernet, MultiFernet

from app.signing_keys import UnusableKey

# The value shipped in .env.example: fine on a laptop, refused in production.
EXAMPLE_ENCRYPTION_KEY = "ZXhhbXBsZS10b3RwLWtleS1kby1ub3QtdXNlLWl0LTA="


def build_cipher(keys: Sequence[str], setting: str) -> MultiFernet:
    """The cipher of `keys` (url-safe base64 of 32 random bytes each, as
    `Fernet.generate_key()` makes them), the first one encrypting."""
    if not keys:
        raise UnusableKey(f"{setting} needs at least one key")
    fernets = []
    for key in keys:
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as exc:
            raise UnusableKey(
                f"{setting} holds a key that is not a Fernet key (make one: python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from exc
    return MultiFernet(fernets)
