"""Ed25519 keys as an operator makes them (`openssl genpkey -algorithm ed25519`),
and the settings of apps that sign with them."""

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

# Long, random-looking HMAC secrets, as `make up` writes them.
OLD_SECRET = "old-secret-key-rotated-out-of-service-0123456789abcdef"
NEW_SECRET = "new-secret-key-signing-from-now-on-0123456789abcdef"


def ed25519_key(name: str) -> Ed25519PrivateKey:
    """The same key for the same name in every run."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def eddsa(key: Ed25519PrivateKey, *retired: Ed25519PrivateKey, **more: Any) -> dict[str, Any]:
    """Settings overrides (for app_with) of an app signing with `key`, still
    verifying the tokens of the `retired` ones."""
    return {
        "JWT_ALGORITHM": "EdDSA",
        "JWT_PRIVATE_KEY": SecretStr(private_pem(key)),
        "JWT_PUBLIC_KEYS_PREVIOUS": "".join(public_pem(old) for old in retired),
        **more,
    }


def hs256(secret: str, *previous: str, **more: Any) -> dict[str, Any]:
    return {
        "JWT_ALGORITHM": "HS256",
        "SECRET_KEY": SecretStr(secret),
        "SECRET_KEY_PREVIOUS": [SecretStr(old) for old in previous],
        "JWT_PRIVATE_KEY": None,
        "JWT_PUBLIC_KEYS_PREVIOUS": "",
        **more,
    }
