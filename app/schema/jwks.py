"""The JSON Web Key Set (RFC 7517) other services verify this API's tokens with."""

from typing import Literal

from pydantic import BaseModel, Field


class PublicJWK(BaseModel):
    """An Ed25519 public key (RFC 8037). Public members only: never `d` nor `k`."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: str = Field(
        description="The public key, base64url.",
        examples=["11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"],
    )
    kid: str = Field(
        description="Its RFC 7638 thumbprint: the `kid` of the tokens it verifies.",
        examples=["kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"],
    )
    use: Literal["sig"] = "sig"
    alg: Literal["EdDSA"] = "EdDSA"


class JWKSet(BaseModel):
    keys: list[PublicJWK] = Field(
        description="The signing key's public half first, then retired keys whose "
        "tokens may still be live. Empty while tokens are signed with HS256."
    )
