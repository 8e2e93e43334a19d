"""The pages mailed links open: choose a new password, verify an address (or a
new one), secure the account after an email change that wasn't the owner's.

Static HTML whose inline script reads the token from the link's fragment (never
sent to a server, so in no access log), removes it from the address bar, and
POSTs it to the API. Strict headers: a CSP allowing only this response's own
script and style (by nonce) and requests to this origin, no referrer, no
framing, no caching. Not part of the API's OpenAPI (they answer HTML).
"""

import secrets

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.dependencies import SettingsDep
from app.mail.render import render_page

router = APIRouter(include_in_schema=False)


def _page(template: str, project: str) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    policy = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        render_page(template, project=project, nonce=nonce),
        headers={
            "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(settings: SettingsDep) -> HTMLResponse:
    return _page("reset_password", settings.PROJECT_NAME)


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(settings: SettingsDep) -> HTMLResponse:
    return _page("verify_email", settings.PROJECT_NAME)


@router.get("/secure-account", response_class=HTMLResponse)
async def secure_account_page(settings: SettingsDep) -> HTMLResponse:
    return _page("secure_account", settings.PROJECT_NAME)
