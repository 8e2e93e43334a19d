"""Passkeys as a browser uses them, for the tests: the options asked for, the soft
authenticator's answer (tests/auth/soft_authenticator.py) sent back."""

from typing import Any

import httpx

from tests.auth.soft_authenticator import SoftAuthenticator
from tests.conftest import bearer

PASSKEYS = "/api/auth/passkeys"
REGISTER_OPTIONS = f"{PASSKEYS}/register/options"
LOGIN_OPTIONS = f"{PASSKEYS}/login/options"
TOKEN_PASSKEY = "/api/token/passkey"
COOKIE_PASSKEY = "/api/auth/cookie/passkey"


async def registration_options(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post(REGISTER_OPTIONS, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finish_registration(
    client: httpx.AsyncClient,
    token: str,
    ceremony: str,
    credential: dict[str, Any],
    name: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"ceremony": ceremony, "credential": credential}
    if name is not None:
        body["name"] = name
    return await client.post(PASSKEYS, json=body, headers=bearer(token))


async def add_passkey(
    client: httpx.AsyncClient,
    token: str,
    authenticator: SoftAuthenticator,
    name: str | None = None,
) -> dict[str, Any]:
    """Register a new passkey of `authenticator` to the token's account."""
    options = await registration_options(client, token)
    credential = authenticator.create(options["publicKey"])
    response = await finish_registration(client, token, options["ceremony"], credential, name)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login_options(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(LOGIN_OPTIONS)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_in(
    client: httpx.AsyncClient,
    authenticator: SoftAuthenticator,
    path: str = TOKEN_PASSKEY,
    **bend: Any,
) -> httpx.Response:
    """Ask for options and answer them with the authenticator (bent as `bend` says)."""
    options = await login_options(client)
    credential = authenticator.get(options["publicKey"], **bend)
    return await client.post(path, json={"ceremony": options["ceremony"], "credential": credential})


async def passkeys_of(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await client.get(PASSKEYS, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body
