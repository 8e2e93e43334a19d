"""What the OpenID tests share: the database as they check it, an account with
a verified address, and what a signed-in callback answers."""

from typing import Any

import httpx
from fastapi import FastAPI

from tests.auth.cookie_sessions import ACCESS, CSRF, set_cookies
from tests.conftest import register
from tests.mail.helpers import execute, rows


async def user_row(app: FastAPI, email: str) -> dict[str, Any]:
    [row] = await rows(app, "SELECT * FROM users WHERE email = :email", email=email)
    return row


async def links_of(app: FastAPI, user_id: int) -> list[dict[str, Any]]:
    return await rows(
        app, "SELECT * FROM oidc_identities WHERE user_id = :id ORDER BY id", id=user_id
    )


async def audit(app: FastAPI, event: str) -> list[dict[str, Any]]:
    return await rows(
        app,
        "SELECT details, target_id FROM audit_events WHERE type = :type ORDER BY id",
        type=event,
    )


async def verified_account(client: httpx.AsyncClient, app: FastAPI, email: str) -> dict[str, Any]:
    """An account registered with a password whose address was verified."""
    registered = await register(client, email)
    await execute(app, "UPDATE users SET is_verified = true WHERE email = :email", email=email)
    return registered


def signed_in(response: httpx.Response, redirect_to: str = "/") -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == redirect_to
    cookies = set_cookies(response)
    assert ACCESS in cookies
    assert CSRF in cookies
