"""A software WebAuthn authenticator and browser, for the tests: it answers the
options the app gives as `navigator.credentials.create()` and `.get()` would,
with real keys (the `cryptography` library), a real "none" attestation object
(CBOR, cbor2), real authenticator data (rpIdHash, flags, counter, attested
credential data) and clientDataJSON, and real signatures. Every part can be
bent (another origin, relying party id, challenge, flags, counter, key) so the
attack suite can send what a broken or malicious client would.

Nothing here is the app's code: the app checks what this makes with py_webauthn.
"""

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

RP_ID = "stack.localhost"
ORIGIN = "https://stack.localhost"
# Authenticator data flags (WebAuthn §6.1).
UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
ZERO_AAGUID = bytes(16)

Algorithm = Literal["ES256", "EdDSA", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(algorithm: Algorithm = "ES256") -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def cose_public_key(key: PrivateKey) -> bytes:
    """The key's public half as a COSE_Key (RFC 9053), CBOR-encoded."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cbor2.dumps({1: 1, 3: -8, -1: 6, -2: raw})  # OKP, EdDSA, Ed25519
    assert isinstance(public, rsa.RSAPublicKey)
    rsa_numbers = public.public_numbers()
    n = rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")
    e = rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")
    return cbor2.dumps({1: 3, 3: -257, -1: n, -2: e})  # RSA, RS256


def sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def authenticator_data(
    *,
    rp_id: str,
    flags: int,
    counter: int,
    attested: bytes = b"",
) -> bytes:
    """rpIdHash (32) | flags (1) | signCount (4, big-endian) | attested credential data."""
    return (
        hashlib.sha256(rp_id.encode()).digest()
        + bytes([flags])
        + struct.pack(">I", counter)
        + attested
    )


def client_data(*, kind: str, challenge: bytes | str, origin: str) -> bytes:
    """clientDataJSON as a browser serializes it (the challenge base64url)."""
    encoded = challenge if isinstance(challenge, str) else b64url(challenge)
    return json.dumps(
        {"type": kind, "challenge": encoded, "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()


class Excluded(Exception):
    """What a real authenticator does when one of its credentials is in
    `excludeCredentials`: it creates none (InvalidStateError in the browser)."""


@dataclass
class Credential:
    """A passkey held by the authenticator (a discoverable credential)."""

    id: bytes
    key: PrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0


@dataclass
class SoftAuthenticator:
    """A platform authenticator behind a browser at `origin`. `counter_step` 0
    makes it keep no signature counter (as synced passkeys do)."""

    origin: str = ORIGIN
    algorithm: Algorithm = "ES256"
    counter_step: int = 1
    backed_up: bool = True
    transports: tuple[str, ...] = ("internal", "hybrid")
    credentials: list[Credential] = field(default_factory=list)

    # --- navigator.credentials.create() ------------------------------------------

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | str | None = None,
        kind: str = "webauthn.create",
        flags: int | None = None,
        credential_id: bytes | None = None,
        key: PrivateKey | None = None,
        ignore_exclusions: bool = False,
    ) -> dict[str, Any]:
        """A new passkey for the options' user, and the browser's `toJSON()` of
        the answer. Keyword arguments bend it as an attacker would."""
        rp = rp_id or options["rp"].get("id") or RP_ID
        mine = {credential.id for credential in self.credentials}
        excluded = {from_b64url(entry["id"]) for entry in options.get("excludeCredentials", [])}
        if mine & excluded and not ignore_exclusions:
            raise Excluded("a passkey of this authenticator is registered already")
        credential = Credential(
            id=credential_id or secrets.token_bytes(16),
            key=key or new_key(self.algorithm),
            rp_id=rp,
            user_handle=from_b64url(options["user"]["id"]),
        )
        default_flags = UP | UV | AT | ((BE | BS) if self.backed_up else 0)
        attested = (
            ZERO_AAGUID
            + struct.pack(">H", len(credential.id))
            + credential.id
            + cose_public_key(credential.key)
        )
        auth_data = authenticator_data(
            rp_id=rp,
            flags=default_flags if flags is None else flags,
            counter=credential.counter,
            attested=attested,
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = client_data(
            kind=kind,
            challenge=options["challenge"] if challenge is None else challenge,
            origin=origin or self.origin,
        )
        self.credentials.append(credential)
        return {
            "id": b64url(credential.id),
            "rawId": b64url(credential.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client),
                "attestationObject": b64url(attestation),
                "transports": list(self.transports),
            },
        }

    # --- navigator.credentials.get() ----------------------------------------------

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: Credential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | str | None = None,
        kind: str = "webauthn.get",
        flags: int | None = None,
        counter: int | None = None,
        user_handle: bytes | None = None,
        signing_key: PrivateKey | None = None,
        with_user_handle: bool = True,
    ) -> dict[str, Any]:
        """An assertion by one of its passkeys for the options' relying party
        (the newest, unless `credential` says which), and the browser's
        `toJSON()` of it. The counter moves by `counter_step` unless `counter`
        sets it."""
        rp = rp_id or options.get("rpId") or RP_ID
        chosen = credential or next(c for c in reversed(self.credentials) if c.rp_id == rp)
        if counter is None:
            chosen.counter += self.counter_step
            counter = chosen.counter
        default_flags = UP | UV | ((BE | BS) if self.backed_up else 0)
        auth_data = authenticator_data(
            rp_id=rp, flags=default_flags if flags is None else flags, counter=counter
        )
        client = client_data(
            kind=kind,
            challenge=options["challenge"] if challenge is None else challenge,
            origin=origin or self.origin,
        )
        signature = sign(signing_key or chosen.key, auth_data + hashlib.sha256(client).digest())
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if with_user_handle:
            response["userHandle"] = b64url(user_handle or chosen.user_handle)
        return {
            "id": b64url(chosen.id),
            "rawId": b64url(chosen.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        }
