"""Signing in with an OpenID provider, from leaving for it to coming back.

`start` draws the flow's secrets (state, nonce, PKCE verifier) and the URL of
the provider's authorization endpoint; the flow travels signed in a cookie of
the browser that started it (tokens.OidcFlow, set by app/auth/oidc_routes.py).
`finish` accepts the provider's callback only from that browser, with that
state; redeems the code (with the verifier) and verifies the ID token (with the
nonce), with no database connection held; then signs in through the one login
(app/auth/service.py `sign_in`) with an OidcProof: throttled, audited, a second
factor asked for, one session opened.
"""

import hmac
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import oidc, tokens
from app.auth import service as auth_service
from app.auth.proofs import OidcProof
from app.auth.service import Login, SecondStepChallenge
from app.auth.sessions import Client
from app.config import Settings
from app.exceptions import OidcRefused
from app.models import utcnow
from app.schema.audit import EventType
from app.services import audit


@dataclass(frozen=True, slots=True)
class Started:
    """Where to send the browser, and the flow cookie's value to set."""

    authorization_url: str
    flow_cookie: str


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: Login | SecondStepChallenge
    redirect_to: str


async def start(
    *, providers: oidc.Providers, settings: Settings, provider: str, redirect_to: str
) -> Started:
    chosen = providers.get(provider)
    flow = tokens.OidcFlow(
        provider=chosen.name,
        state=oidc.new_secret(),
        nonce=oidc.new_secret(),
        verifier=oidc.new_secret(),
        redirect_to=redirect_to,
    )
    url = await chosen.authorization_url(
        providers.http, flow, redirect_uri=oidc.redirect_uri(settings, chosen.name)
    )
    return Started(
        authorization_url=url, flow_cookie=flow.encode(settings=settings, issued_at=utcnow())
    )


async def _refused(db: AsyncSession, *, provider: str, reason: str) -> OidcRefused:
    audit.record(
        db,
        EventType.LOGIN_FAILED,
        actor=None,
        target=None,
        details={"reason": reason, "provider": provider},
    )
    await db.commit()
    return OidcRefused()


def _flow_of(
    flow_cookie: str | None, *, settings: Settings, provider: str, state: str | None
) -> tokens.OidcFlow | None:
    """The flow this browser started with this provider, if the callback's state
    is its own; else None (no cookie: another browser, or one that never
    started; a forged, expired or other provider's cookie; another state)."""
    if not flow_cookie or not state:
        return None
    try:
        flow = tokens.OidcFlow.decode(flow_cookie, settings=settings)
    except tokens.InvalidToken:
        return None
    if flow.provider != provider or not hmac.compare_digest(flow.state.encode(), state.encode()):
        return None
    return flow


async def finish(
    *,
    db: AsyncSession,
    providers: oidc.Providers,
    settings: Settings,
    provider: str,
    flow_cookie: str | None,
    state: str | None,
    code: str | None,
    error: str | None,
    client: Client,
    device_token: str | None,
) -> Finished:
    chosen = providers.get(provider)
    flow = _flow_of(flow_cookie, settings=settings, provider=chosen.name, state=state)
    if flow is None:
        raise await _refused(db, provider=chosen.name, reason="oidc_state_mismatch")
    if error is not None or not code:
        raise await _refused(db, provider=chosen.name, reason="oidc_provider_error")
    try:
        identity = await chosen.redeem(
            providers.http,
            flow,
            code=code,
            redirect_uri=oidc.redirect_uri(settings, chosen.name),
        )
    except oidc.OidcFailure as failure:
        raise await _refused(db, provider=chosen.name, reason=failure.reason) from None
    outcome = await auth_service.sign_in(
        db=db,
        settings=settings,
        proof=OidcProof(identity=identity, settings=settings),
        client=client,
        device_token=device_token,
    )
    return Finished(outcome=outcome, redirect_to=flow.redirect_to)
