"""The keys that sign and verify JWTs, read once from the settings (app/settings/auth.py
builds the ring when it loads, so a bad key stops start-up, never a request).

Every key has an id (`kid`, written into each token's header) and the one
algorithm it may be used with: a token is checked with the key its `kid` names,
by that key's algorithm, whatever its header's `alg` says (no algorithm
confusion). Keys of an HMAC secret and of an Ed25519 key pair can both be in the
ring, so a deployment can move from one to the other without logging anyone out.
"""

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

Algorithm = Literal["HS256", "EdDSA"]
HS256: Algorithm = "HS256"
EDDSA: Algorithm = "EdDSA"

# The kid of an HMAC secret is a truncated SHA-256 of this label and the secret.
# Safe to publish: SHA-256 cannot be inverted, and the secret (>= 32 random
# characters in production) cannot be guessed from 64 bits of its hash any better
# than from a token's own signature, which every token already shows. The label
# keeps the value from equalling a hash of the secret made for anything else.
HMAC_KID_LABEL = b"fastapi-stack JWT HMAC key id v1\x00"
HMAC_KID_HEX_CHARS = 16

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


class UnusableKey(ValueError):
    """A key setting that cannot be used; the message names the setting."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_kid(secret: str) -> str:
    return hashlib.sha256(HMAC_KID_LABEL + secret.encode()).hexdigest()[:HMAC_KID_HEX_CHARS]


def okp_members(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The JWK members that define an Ed25519 public key (RFC 8037), in the
    lexicographic order RFC 7638 hashes them in."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638: SHA-256 of the required members as compact, sorted JSON."""
    canonical = json.dumps(okp_members(public_key), separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: Algorithm
    key: bytes | Ed25519PrivateKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: Algorithm
    key: bytes | Ed25519PublicKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyRing:
    signing: SigningKey
    # Every key a token may name: the signing key's own and the previous ones.
    by_kid: Mapping[str, VerificationKey]
    # Tried in turn for a token without a kid (JWT_REQUIRE_KID=false): the HMAC
    # keys only, as the releases before key ids signed. Empty: refused.
    without_kid: tuple[VerificationKey, ...]

    def public_keys(self) -> list[tuple[str, Ed25519PublicKey]]:
        """(kid, key) of every Ed25519 key, the signing key's first."""
        return [
            (key.kid, key.key)
            for key in self.by_kid.values()
            if isinstance(key.key, Ed25519PublicKey)
        ]


def _unescape(pem: str) -> str:
    r"""A PEM given on one line with `\n` escapes (as some secret stores hold it)."""
    return pem.replace("\\n", "\n").strip()


def _pem_blocks(text: str, setting: str) -> list[tuple[str, bytes]]:
    text = _unescape(text)
    blocks = [(match.group(1), match.group(0).encode()) for match in _PEM_BLOCK.finditer(text)]
    if _PEM_BLOCK.sub("", text).strip():
        raise UnusableKey(f"{setting} holds text that is not a PEM block")
    return blocks


def load_private_key(pem: str, setting: str) -> Ed25519PrivateKey:
    blocks = _pem_blocks(pem, setting)
    if len(blocks) != 1:
        raise UnusableKey(f"{setting} must hold exactly one PEM private key, found {len(blocks)}")
    try:
        key = serialization.load_pem_private_key(blocks[0][1], password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UnusableKey(f"{setting} is not a readable, unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UnusableKey(
            f"{setting} is not an Ed25519 key (make one: openssl genpkey -algorithm ed25519)"
        )
    return key


def load_public_keys(pem: str, setting: str) -> list[Ed25519PublicKey]:
    keys = []
    for label, block in _pem_blocks(pem, setting):
        if label != "PUBLIC KEY":
            raise UnusableKey(
                f"{setting} must hold public keys only, found a {label} "
                "(derive the public key: openssl pkey -in key.pem -pubout)"
            )
        try:
            key = serialization.load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UnusableKey(f"{setting} holds an unreadable PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise UnusableKey(f"{setting} holds a public key that is not Ed25519")
        keys.append(key)
    return keys


def _hmac_key(secret: str) -> VerificationKey:
    return VerificationKey(hmac_kid(secret), HS256, secret.encode())


def _public_key(key: Ed25519PublicKey) -> VerificationKey:
    return VerificationKey(jwk_thumbprint(key), EDDSA, key)


def build_keyring(
    *,
    algorithm: Algorithm,
    secret: str,
    previous_secrets: Iterable[str],
    private_key: Ed25519PrivateKey | None,
    previous_public_keys: Iterable[Ed25519PublicKey],
    require_kid: bool,
) -> KeyRing:
    """HS256 signs with `secret`; EdDSA with `private_key` (the secret then signs
    and verifies nothing). Previous keys of either kind verify until removed."""
    if algorithm == HS256:
        current = _hmac_key(secret)
        signing = SigningKey(current.kid, HS256, secret.encode())
    else:
        if private_key is None:
            raise UnusableKey("JWT_ALGORITHM=EdDSA needs JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE")
        current = _public_key(private_key.public_key())
        signing = SigningKey(current.kid, EDDSA, private_key)
    previous_hmac = [_hmac_key(previous) for previous in previous_secrets]
    previous = [*previous_hmac, *(_public_key(key) for key in previous_public_keys)]
    by_kid = {current.kid: current}
    for key in previous:
        by_kid.setdefault(key.kid, key)
    hmac_keys = [current, *previous_hmac] if algorithm == HS256 else previous_hmac
    return KeyRing(
        signing=signing,
        by_kid=by_kid,
        without_kid=() if require_kid else tuple(hmac_keys),
    )
