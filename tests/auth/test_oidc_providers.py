"""`GET /api/auth/oidc/providers`: the providers a sign-in page offers, for
anyone, with nothing of their configuration but the name and the button's text."""

import json

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.settings.auth import OidcProviderSetting
from tests.conftest import CLIENT_ADDRESS, app_with, client_at

PROVIDERS = "/api/auth/oidc/providers"
CLIENT_ID = "1234-abc.apps.googleusercontent.com"
SECRET = "GOCSPX-never-shown"
ISSUER = "https://accounts.google.com"
CONFIGURED = {
    "google": OidcProviderSetting(issuer=ISSUER, client_id=CLIENT_ID, display_name="Google"),
    "company": OidcProviderSetting(issuer="https://sso.example.com/realms/staff", client_id="x"),
}
SECRETS = SecretStr(json.dumps({"google": SECRET, "company": "company-secret"}))


async def test_none_is_configured_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get(PROVIDERS)
    assert response.status_code == 200
    assert response.json() == []


async def test_each_provider_is_listed_by_name_in_order_with_its_button_text(
    app: FastAPI, settings: Settings
) -> None:
    async with (
        app_with(settings, OIDC_PROVIDERS=CONFIGURED, OIDC_CLIENT_SECRETS=SECRETS) as configured,
        client_at(configured, CLIENT_ADDRESS) as http,
    ):
        response = await http.get(PROVIDERS)
    assert response.status_code == 200
    # No session, no key: a signed-out page reads it.
    assert response.json() == [
        {"name": "google", "display_name": "Google"},
        {"name": "company", "display_name": "company"},
    ]
    assert response.headers["Cache-Control"] == "no-store"
    # Nothing of the configuration but the names: no issuer, client id or secret.
    for private in (CLIENT_ID, SECRET, "company-secret", ISSUER, "sso.example.com"):
        assert private not in response.text


async def test_it_is_a_public_operation_of_the_api(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"][PROVIDERS]["get"]
    assert "security" not in operation
    item = operation["responses"]["200"]["content"]["application/json"]["schema"]["items"]
    assert item == {"$ref": "#/components/schemas/OidcProviderOut"}
