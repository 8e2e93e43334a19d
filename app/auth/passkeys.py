"""Passkeys (WebAuthn): the options a browser's `navigator.credentials.create()`
and `.get()` take, and the checks of what they answer. The one module that
imports py_webauthn (`webauthn`), and only inside the functions that use it:
most workers never see a passkey ceremony, and py_webauthn brings pyOpenSSL,
pyasn1 and its attestation formats with it (a few MB per worker otherwise).

No database here: the ceremonies' challenges are app/auth/passkey_ceremonies.py's,
the passkeys app/services/passkeys.py's. What the browser sends is the JSON of
its `PublicKeyCredential` (`toJSON()`: binary fields base64url); a check that
fails raises `PasskeyCheckFailed`, naming why in words of our own (never the
library's message, which may quote what the client sent).
"""

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.config import Settings

# The public-key algorithms accepted (COSE ids), in the browser's order of
# preference: ES256, EdDSA (Ed25519), RS256. What every authenticator in use
# offers; the PS* and ES512 py_webauthn also knows are left out.
ES256, EDDSA, RS256 = -7, -8, -257
ALGORITHMS = (ES256, EDDSA, RS256)
# The transports a browser may name (WebAuthn's AuthenticatorTransport); others are dropped.
TRANSPORTS = frozenset({"usb", "nfc", "ble", "smart-card", "hybrid", "internal", "cable"})
# A WebAuthn user handle: random, at most 64 bytes (the spec's bound).
USER_HANDLE_BYTES = 32


class PasskeyCheckFailed(ValueError):
    """What the browser answered does not hold: `reason` for the audit trail,
    `detail` for the caller."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


MALFORMED = PasskeyCheckFailed(
    "passkey_malformed", "the response is malformed (send the browser's credential.toJSON())"
)
# py_webauthn's refusals, by how its message starts, as (reason, detail).
_REFUSALS: tuple[tuple[str, str, str], ...] = (
    (
        "Unexpected client data type",
        "passkey_wrong_ceremony",
        "the response belongs to the other kind of ceremony (webauthn.create and webauthn.get)",
    ),
    (
        "Client data challenge was not expected challenge",
        "passkey_challenge",
        "the response answers another challenge than this ceremony's",
    ),
    (
        "Unexpected client data origin",
        "passkey_origin",
        "the page's origin is not one this site accepts (WEBAUTHN_ORIGINS)",
    ),
    (
        "Unexpected RP ID hash",
        "passkey_rp_id",
        "the authenticator signed for another relying party id than this site's",
    ),
    (
        "User verification is required",
        "passkey_user_not_verified",
        "the authenticator did not verify the user (PIN or biometrics), which is required",
    ),
    (
        "User was not present",
        "passkey_user_not_present",
        "the authenticator did not report the user present",
    ),
    (
        "User presence was required",
        "passkey_user_not_present",
        "the authenticator did not report the user present",
    ),
    (
        "Response sign count",
        "passkey_sign_count",
        "the authenticator's signature counter did not move forward: it may have been cloned",
    ),
    (
        "Could not verify authentication signature",
        "passkey_signature",
        "the signature does not verify with this passkey's public key",
    ),
    (
        "Unsupported credential public key alg",
        "passkey_algorithm",
        "the passkey's algorithm is not accepted here (ES256, EdDSA or RS256)",
    ),
)


def _refusal(exc: Exception) -> PasskeyCheckFailed:
    message = str(exc)
    for start, reason, detail in _REFUSALS:
        if message.startswith(start):
            return PasskeyCheckFailed(reason, detail)
    return PasskeyCheckFailed(
        "passkey_invalid", "the response is malformed or could not be verified"
    )


def b64url_decode(text: str) -> bytes:
    """Base64url without padding, as WebAuthn's JSON writes binary; ValueError if not."""
    if not text.isascii():
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def credential_id_of(credential: Mapping[str, Any]) -> bytes | None:
    """The credential id the browser's answer names (its `rawId`), or None."""
    raw = credential.get("rawId")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return b64url_decode(raw)
    except ValueError:
        return None


def user_handle_of(credential: Mapping[str, Any]) -> bytes | None:
    """The user handle a sign-in's authenticator gave back, or None."""
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, Mapping) else None
    if not isinstance(handle, str) or not handle:
        return None
    try:
        return b64url_decode(handle)
    except ValueError:
        return None


def transports_of(credential: Mapping[str, Any]) -> list[str]:
    response = credential.get("response")
    listed = response.get("transports") if isinstance(response, Mapping) else None
    if not isinstance(listed, list):
        return []
    return sorted({name for name in listed if isinstance(name, str) and name in TRANSPORTS})


def registration_options(
    *,
    settings: Settings,
    user_handle: bytes,
    user_name: str,
    display_name: str,
    challenge: bytes,
    exclude: Sequence[tuple[bytes, Sequence[str]]],
) -> dict[str, Any]:
    """`PublicKeyCredentialCreationOptionsJSON` for `navigator.credentials.create()`:
    a discoverable credential (resident key required), the user verified, no
    attestation asked for, the user's passkeys excluded (one per authenticator)."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.cose import COSEAlgorithmIdentifier
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        AuthenticatorTransport,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    known = {transport.value for transport in AuthenticatorTransport}
    options = generate_registration_options(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.webauthn_rp_name,
        user_id=user_handle,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=int(settings.PASSKEY_CEREMONY_TTL.total_seconds() * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(
                id=credential_id,
                transports=[AuthenticatorTransport(name) for name in transports if name in known],
            )
            for credential_id, transports in exclude
        ],
        supported_pub_key_algs=[COSEAlgorithmIdentifier(alg) for alg in ALGORITHMS],
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def authentication_options(*, settings: Settings, challenge: bytes) -> dict[str, Any]:
    """`PublicKeyCredentialRequestOptionsJSON` for `navigator.credentials.get()`: no
    allowed credentials (the browser offers the user's discoverable passkeys for
    this site), the user verified."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=settings.webauthn_rp_id,
        challenge=challenge,
        timeout=int(settings.PASSKEY_CEREMONY_TTL.total_seconds() * 1000),
        allow_credentials=[],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A registration that verified: what to store of the new passkey."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    backed_up: bool


def verify_registration(
    *, settings: Settings, credential: Mapping[str, Any], challenge: bytes
) -> NewCredential:
    """Check a `navigator.credentials.create()` answer against its ceremony's
    challenge, this site's origins and relying party id, with the user present
    and verified and an accepted algorithm. Attestation is not asked for, so
    not judged (a "none" statement, or whatever the authenticator sends, checked
    for consistency by py_webauthn); PasskeyCheckFailed if anything fails."""
    from webauthn import verify_registration_response
    from webauthn.helpers.cose import COSEAlgorithmIdentifier

    try:
        verified = verify_registration_response(
            credential=dict(credential),
            expected_challenge=challenge,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=settings.webauthn_origins,
            require_user_presence=True,
            require_user_verification=True,
            supported_pub_key_algs=[COSEAlgorithmIdentifier(alg) for alg in ALGORITHMS],
        )
    except Exception as exc:  # py_webauthn's, or a parser's on bytes the client chose
        raise _refusal(exc) from None
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports_of(credential),
        backed_up=verified.credential_backed_up,
    )


@dataclass(frozen=True, slots=True)
class Assertion:
    """A sign-in that verified: the authenticator's counter and backup state now."""

    sign_count: int
    backed_up: bool


def verify_authentication(
    *,
    settings: Settings,
    credential: Mapping[str, Any],
    challenge: bytes,
    public_key: bytes,
    sign_count: int,
) -> Assertion:
    """Check a `navigator.credentials.get()` answer: its ceremony's challenge,
    this site's origins and relying party id, the user present and verified, a
    signature by the passkey's key, and a signature counter that moved past the
    stored one (unless both are 0: an authenticator that keeps none, as synced
    passkeys do); PasskeyCheckFailed if anything fails."""
    from webauthn import verify_authentication_response

    try:
        verified = verify_authentication_response(
            credential=dict(credential),
            expected_challenge=challenge,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=settings.webauthn_origins,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except Exception as exc:  # py_webauthn's, or a parser's on bytes the client chose
        raise _refusal(exc) from None
    return Assertion(sign_count=verified.new_sign_count, backed_up=verified.credential_backed_up)
