"""The HTML pages the app serves itself: those mailed links open
(app/routes/account_mail.py) and the account page, `GET /account`.

Every page is one template (app/mail/templates/pages/) with its own script and
style, allowed by a nonce drawn for each response. Strict headers: a CSP allowing
only that script and style and requests to this origin (no other source, no
inline handler, no eval, no form posted, no framing), no referrer, no caching.
Not part of the API's OpenAPI (they answer HTML).
"""

import secrets

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.dependencies import SettingsDep
from app.mail.render import render_page

router = APIRouter(include_in_schema=False)

# The policy of every page; `{nonce}` is the response's own.
POLICY = (
    "default-src 'none'; "
    "script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# The account page shows the QR code of a TOTP setup, an SVG the API answers, as
# an <img> of a data: URL: an image runs no script and loads nothing, whatever
# the SVG holds. No other image source.
IMAGES_FROM_DATA = "; img-src data:"


def policy(nonce: str, *, images_from_data: bool = False) -> str:
    """The Content-Security-Policy of a page whose script and style carry `nonce`."""
    return POLICY.format(nonce=nonce) + (IMAGES_FROM_DATA if images_from_data else "")


def page(
    template: str, project: str, *, images_from_data: bool = False, **values: str
) -> HTMLResponse:
    """pages/TEMPLATE.html, filled, with a fresh nonce and the strict headers."""
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(
        render_page(template, project=project, nonce=nonce, **values),
        headers={
            "Content-Security-Policy": policy(nonce, images_from_data=images_from_data),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


@router.get("/account", response_class=HTMLResponse)
async def account_page(settings: SettingsDep) -> HTMLResponse:
    """Sign in, and manage the account's ways in: second factor, passkeys,
    sessions, linked providers. Everything goes through the JSON API with the
    cookie session (docs/auth.md, "The account page")."""
    return page("account", settings.PROJECT_NAME, images_from_data=True)
