"""The public keys of the signing key ring, for other services to verify tokens."""

from app.config import Settings
from app.schema.jwks import JWKSet, PublicJWK
from app.signing_keys import okp_members


def published_keys(*, settings: Settings) -> JWKSet:
    """Public halves of the Ed25519 keys only: an HMAC secret is never published."""
    return JWKSet(
        keys=[
            PublicJWK(x=okp_members(key)["x"], kid=kid)
            for kid, key in settings.keyring.public_keys()
        ]
    )
