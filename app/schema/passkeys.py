"""Passkey shapes: the options a ceremony starts with, the browser's answers
(its `PublicKeyCredential.toJSON()`, WebAuthn Level 3: binary fields as
base64url), a passkey as the list shows it, a new name."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.models import MAX_PASSKEY_NAME_LENGTH
from app.schema.common import StrictInput

# The ceremony id is 43 characters (32 random bytes, base64url).
MAX_CEREMONY_LENGTH = 200
CEREMONY_EXAMPLE = "q3T0C1hQm6mP6c9Kz4ZrJ5yqN1o2LwVdE7aUuHfsXb8"
BASE64URL = r"^[A-Za-z0-9_-]*$"
# Bounds on what a browser sends: a credential id is at most 1023 bytes; an
# attestation object with its certificate chain a few kilobytes.
MAX_ID_LENGTH = 1400
MAX_CLIENT_DATA_LENGTH = 8192
MAX_ATTESTATION_LENGTH = 65536
MAX_AUTHENTICATOR_DATA_LENGTH = 8192
MAX_SIGNATURE_LENGTH = 2048
MAX_TRANSPORTS = 8
CREDENTIAL_ID_EXAMPLE = "hcYZJpa1SBaVqA2yZyx1Ng"


def _b64url(max_length: int, example: str, description: str) -> dict[str, Any]:
    """A base64url field's constraints, for `Field(**…)`."""
    return {
        "pattern": BASE64URL,
        "min_length": 1,
        "max_length": max_length,
        "description": description,
        "examples": [example],
    }


Ceremony = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CEREMONY_LENGTH,
        description="The `ceremony` the options answered: single use, valid "
        "PASSKEY_CEREMONY_TTL (5 minutes).",
        examples=[CEREMONY_EXAMPLE],
    ),
]
PasskeyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PASSKEY_NAME_LENGTH),
    Field(description="A name for the owner to tell passkeys apart.", examples=["Phone"]),
]


class _BrowserJson(StrictInput):
    """What the browser's `toJSON()` writes, by its own (camelCase) names only."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class AttestationResponseJson(_BrowserJson):
    """`AuthenticatorAttestationResponseJSON`."""

    client_data_json: str = Field(
        alias="clientDataJSON",
        **_b64url(MAX_CLIENT_DATA_LENGTH, "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0", "base64url"),
    )
    attestation_object: str = Field(
        alias="attestationObject",
        **_b64url(MAX_ATTESTATION_LENGTH, "o2NmbXRkbm9uZQ", "base64url CBOR"),
    )
    authenticator_data: str | None = Field(
        default=None,
        alias="authenticatorData",
        **_b64url(MAX_AUTHENTICATOR_DATA_LENGTH, "SZYN5YgO", "base64url (not read)"),
    )
    transports: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None,
        max_length=MAX_TRANSPORTS,
        description="How the browser may reach the authenticator, kept with the passkey.",
        examples=[["internal", "hybrid"]],
    )
    public_key: str | None = Field(
        default=None,
        alias="publicKey",
        **_b64url(MAX_ATTESTATION_LENGTH, "MFkwEwYHKoZIzj0C", "base64url SPKI (not read)"),
    )
    public_key_algorithm: int | None = Field(
        default=None,
        alias="publicKeyAlgorithm",
        description="The COSE algorithm (not read).",
        examples=[-7],
    )


class AssertionResponseJson(_BrowserJson):
    """`AuthenticatorAssertionResponseJSON`."""

    client_data_json: str = Field(
        alias="clientDataJSON",
        **_b64url(MAX_CLIENT_DATA_LENGTH, "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0", "base64url"),
    )
    authenticator_data: str = Field(
        alias="authenticatorData",
        **_b64url(MAX_AUTHENTICATOR_DATA_LENGTH, "SZYN5YgOjGh0NBcP", "base64url"),
    )
    signature: str = Field(
        **_b64url(MAX_SIGNATURE_LENGTH, "MEUCIQDw", "base64url"),
    )
    user_handle: str | None = Field(
        default=None,
        alias="userHandle",
        **_b64url(128, "dXNlci1oYW5kbGU", "base64url: the account's WebAuthn user handle"),
    )


class _CredentialJson(_BrowserJson):
    id: str = Field(**_b64url(MAX_ID_LENGTH, CREDENTIAL_ID_EXAMPLE, "The credential id."))
    raw_id: str = Field(
        alias="rawId", **_b64url(MAX_ID_LENGTH, CREDENTIAL_ID_EXAMPLE, "The same, as sent.")
    )
    type: Literal["public-key"] = Field(examples=["public-key"])
    authenticator_attachment: Literal["platform", "cross-platform"] | None = Field(
        default=None, alias="authenticatorAttachment", examples=["platform"]
    )
    client_extension_results: dict[str, Any] = Field(
        default_factory=dict, alias="clientExtensionResults", examples=[{}]
    )


class RegistrationResponseJson(_CredentialJson):
    """`RegistrationResponseJSON`: what `navigator.credentials.create()` gave,
    as its `toJSON()` writes it."""

    response: AttestationResponseJson


class AuthenticationResponseJson(_CredentialJson):
    """`AuthenticationResponseJSON`: what `navigator.credentials.get()` gave, as
    its `toJSON()` writes it."""

    response: AssertionResponseJson


class CeremonyOptions(BaseModel):
    """A passkey ceremony started: send `publicKey` to the browser
    (`PublicKeyCredential.parseCreationOptionsFromJSON` or
    `parseRequestOptionsFromJSON`), then its answer with `ceremony`."""

    model_config = ConfigDict(populate_by_name=True)

    ceremony: str = Field(
        description="Opaque, single use: send it back with the browser's answer within "
        "PASSKEY_CEREMONY_TTL.",
        examples=[CEREMONY_EXAMPLE],
    )
    public_key: dict[str, Any] = Field(
        alias="publicKey",
        description="The options for the browser, as WebAuthn's JSON (base64url for binary).",
    )


class PasskeyRegister(StrictInput):
    ceremony: Ceremony
    credential: RegistrationResponseJson
    name: PasskeyName | None = None


class PasskeyRename(StrictInput):
    name: PasskeyName


class PasskeyLogin(StrictInput):
    ceremony: Ceremony
    credential: AuthenticationResponseJson


class PasskeyOut(BaseModel):
    """A passkey of the caller's, never its key."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(examples=["Phone"])
    created_at: datetime
    last_used_at: datetime | None = Field(description="The last sign-in with it; null if none.")
    transports: list[str] = Field(
        description="How the browser reached the authenticator, as it said at registration.",
        examples=[["internal", "hybrid"]],
    )
    backed_up: bool = Field(
        description="Synced by its provider (a multi-device passkey), when last seen."
    )


def credential_json(credential: _CredentialJson) -> dict[str, Any]:
    """The browser's answer as py_webauthn reads it: WebAuthn's own names."""
    return credential.model_dump(by_alias=True, exclude_none=True)
