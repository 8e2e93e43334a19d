"""`GET /.well-known/jwks.json`: the public keys other services verify tokens with,
cacheable, documented, routed by Traefik; never a secret."""

import re
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI

from app.config import Settings
from app.signing_keys import jwk_thumbprint
from tests.auth.keys import ed25519_key, eddsa, public_raw
from tests.conftest import CLIENT_ADDRESS, app_with, client_at
from tests.security.forge import b64url

ROOT = Path(__file__).resolve().parents[2]
JWKS = "/.well-known/jwks.json"


async def test_with_hs256_the_set_is_empty_and_cacheable(client: httpx.AsyncClient) -> None:
    response = await client.get(JWKS)
    assert response.status_code == 200
    assert response.json() == {"keys": []}
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Content-Type"] == "application/json"


async def test_with_eddsa_the_set_holds_the_current_then_the_retired_public_keys(
    app: FastAPI, settings: Settings
) -> None:
    current, retired = ed25519_key("jwks current"), ed25519_key("jwks retired")
    async with (
        app_with(settings, **eddsa(current, retired)) as signing,
        client_at(signing, CLIENT_ADDRESS) as http,
    ):
        response = await http.get(JWKS)
    assert response.headers["Cache-Control"] == "public, max-age=300"
    expected = [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(public_raw(key)),
            "kid": jwk_thumbprint(key.public_key()),
            "use": "sig",
            "alg": "EdDSA",
        }
        for key in (current, retired)
    ]
    assert response.json() == {"keys": expected}
    # pyjwt, as another service would use it, reads every key of the set.
    assert {key.key_id for key in jwt.PyJWKSet.from_dict(response.json()).keys} == {
        key["kid"] for key in expected
    }


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    """RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key."""
    raw = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert b64url(raw) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    thumbprint = jwk_thumbprint(Ed25519PublicKey.from_public_bytes(raw))
    assert thumbprint == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


async def test_the_openapi_documents_the_route(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    operation = schema["paths"][JWKS]["get"]
    assert "security" not in operation
    documented = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert documented == {"$ref": "#/components/schemas/JWKSet"}
    key = schema["components"]["schemas"]["PublicJWK"]
    assert set(key["properties"]) == {"kty", "crv", "x", "kid", "use", "alg"}


# compose.yaml's labels: `traefik.http.routers.<name>.rule=<rule>`, and
# `….<name>.service=app` for the routers that send to the app.
ROUTER_RULE = re.compile(r"^\s*- traefik\.http\.routers\.([\w-]+)\.rule=(.+)$", re.MULTILINE)
TO_THE_APP = re.compile(r"^\s*- traefik\.http\.routers\.([\w-]+)\.service=app$", re.MULTILINE)


def test_traefik_routes_the_jwks_to_the_app() -> None:
    """A service behind the same Traefik fetches https://DOMAIN/.well-known/jwks.json:
    some router of the app takes every path of the domain, or names this one."""
    compose = (ROOT / "compose.yaml").read_text()
    to_the_app = set(TO_THE_APP.findall(compose))
    rules = {name: rule for name, rule in ROUTER_RULE.findall(compose) if name in to_the_app}
    assert {"app", "app-auth"} <= rules.keys()
    every_path = [name for name, rule in rules.items() if not re.search(r"\bPath\w*\(", rule)]
    named = [name for name, rule in rules.items() if JWKS in rule]
    assert every_path or named, rules
