"""`/.well-known/jwks.json`: the public keys that verify this API's tokens, where
services that accept its access tokens (behind the same Traefik, or anywhere) look."""

from fastapi import APIRouter, Response

from app.dependencies import SettingsDep
from app.routes.responses import PydanticJSONResponse
from app.schema.jwks import JWKSet
from app.services import jwks as jwks_service

router = APIRouter(tags=["auth"])

# Keys change only with a deploy, and a retired key stays published for as long as
# its tokens live: a verifier may cache the set for a few minutes.
CACHEABLE = "public, max-age=300"


@router.get("/.well-known/jwks.json", response_model=JWKSet, summary="Token verification keys")
async def jwks(settings: SettingsDep) -> Response:
    """The public keys (JWKS, RFC 7517) that verify the tokens this API signs with
    EdDSA: pick the one whose `kid` the token's header names. Empty with HS256,
    whose secret is never published."""
    response = PydanticJSONResponse(jwks_service.published_keys(settings=settings))
    response.headers["Cache-Control"] = CACHEABLE
    return response
