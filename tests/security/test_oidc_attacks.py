"""Attacks on the OpenID Connect sign-in, against a real provider
(tests/oidc/provider.py): a callback from a browser that did not start the flow
(login CSRF: GHSA-wgrh-7h2j-rg46, CVE-2025-68481), a forged or replayed ID
token, a tampered PKCE verifier, a replayed code, open redirects, a provider
whose discovery names another issuer, and the pre-registration takeover."""

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.auth.cookie_sessions import ACCESS, set_cookies
from tests.conftest import ATTACKER_ADDRESS, PASSWORD, app_with, assert_session_ended, client_at
from tests.oidc.helpers import audit, signed_in, user_row
from tests.oidc.provider import (
    CLIENT_ID,
    PROVIDER,
    Interceptor,
    OpenIdProvider,
    account,
    go_to_provider,
    new_key,
    sign_in,
    start,
)

FLOW_COOKIE = "__Secure-oidc-flow"
VICTIM = "victim@example.com"
ATTACKER = "attacker@example.com"


@pytest.fixture
async def interceptor(oidc_app: FastAPI) -> AsyncIterator[Interceptor]:
    """Stand between the app and the provider for the test."""
    interceptor = Interceptor()
    providers = oidc_app.state.oidc
    await providers.aclose()
    async with httpx.AsyncClient(transport=interceptor) as http:
        providers._http = http  # the client the providers open at their first call
        yield interceptor
    providers._http = None


async def refused_for(app: FastAPI, response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert ACCESS not in set_cookies(response)
    failures = [event["details"]["reason"] for event in await audit(app, "login.failed")]
    assert failures[-1:] == [reason], failures
    assert await audit(app, "login.succeeded") == []


# --- The flow belongs to the browser that started it -----------------------------


async def test_a_callback_without_the_flow_cookie_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    flow = await go_to_provider(browser, account(VICTIM))
    async with client_at(oidc_app, ATTACKER_ADDRESS) as stranger:
        response = await stranger.get(flow.callback_url)
    await refused_for(oidc_app, response, "oidc_state_mismatch")


async def test_a_tampered_state_is_refused(oidc_app: FastAPI, browser: httpx.AsyncClient) -> None:
    flow = await go_to_provider(browser, account(VICTIM))
    query = flow.query
    response = await browser.get(
        flow.callback_url.split("?")[0], params={**query, "state": query["state"][:-2] + "xx"}
    )
    await refused_for(oidc_app, response, "oidc_state_mismatch")


async def test_a_missing_state_is_refused(oidc_app: FastAPI, browser: httpx.AsyncClient) -> None:
    flow = await go_to_provider(browser, account(VICTIM))
    response = await browser.get(
        flow.callback_url.split("?")[0], params={"code": flow.query["code"]}
    )
    await refused_for(oidc_app, response, "oidc_state_mismatch")


async def test_a_callback_from_another_browsers_flow_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """Login CSRF: the attacker signs in at the provider in their own browser and
    lures the victim's browser (which started a flow of its own) to their
    callback URL, to sign the victim in as the attacker. The state is the
    attacker's browser's, not the victim's: refused, nobody signed in."""
    await start(browser)  # the victim's browser holds a flow cookie of its own
    async with client_at(oidc_app, ATTACKER_ADDRESS) as attacker:
        attackers = await go_to_provider(attacker, account(ATTACKER))
    response = await browser.get(attackers.callback_url)
    await refused_for(oidc_app, response, "oidc_state_mismatch")


async def test_a_forged_flow_cookie_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """The flow cookie is signed: one written by hand with the callback's state
    (and a verifier of the attacker's choosing) is not this app's."""
    flow = await go_to_provider(browser, account(VICTIM))
    forged = jwt.encode(
        {
            "sub": PROVIDER,
            "type": "oidc_flow",
            "state": flow.query["state"],
            "nonce": "n",
            "verifier": "v" * 43,
            "redirect_to": "/",
            "exp": int(time.time()) + 600,
        },
        "not-the-apps-key-not-the-apps-key-not-the-apps-key",
        algorithm="HS256",
    )
    browser.cookies.clear()
    response = await browser.get(flow.callback_url, headers={"Cookie": f"{FLOW_COOKIE}={forged}"})
    await refused_for(oidc_app, response, "oidc_state_mismatch")


async def test_the_flow_cookie_is_httponly_secure_lax_and_only_for_the_callback(
    browser: httpx.AsyncClient,
) -> None:
    started = await start(browser)
    cookie = set_cookies(started)[FLOW_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == f"/api/auth/oidc/{PROVIDER}/callback"
    assert 0 < int(cookie["max-age"]) <= 600


# --- What the provider answers -------------------------------------------------------


async def test_a_tampered_pkce_verifier_is_refused_by_the_provider(
    oidc_app: FastAPI, browser: httpx.AsyncClient, interceptor: Interceptor
) -> None:
    """Whoever holds the code but not the verifier gets nothing: the provider's
    token endpoint refuses (invalid_grant), and the app answers a clear 401."""
    interceptor.request_form = lambda form: {**form, "code_verifier": "x" * 43}
    response = await sign_in(browser, account(VICTIM))
    await refused_for(oidc_app, response, "oidc_token_refused")


async def test_a_replayed_authorization_code_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    flow = await go_to_provider(browser, account(VICTIM))
    cookie = browser.cookies[FLOW_COOKIE]
    signed_in(await browser.get(flow.callback_url))
    # The same browser, its flow cookie put back, the same code again.
    response = await browser.get(flow.callback_url, headers={"Cookie": f"{FLOW_COOKIE}={cookie}"})
    assert response.status_code == 401, response.text
    [failed] = await audit(oidc_app, "login.failed")
    assert failed["details"]["reason"] == "oidc_token_refused"


async def test_an_error_from_the_provider_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    flow = await go_to_provider(browser, account(VICTIM))
    response = await browser.get(
        flow.callback_url.split("?")[0],
        params={"error": "access_denied", "state": flow.query["state"]},
    )
    await refused_for(oidc_app, response, "oidc_provider_error")


# --- The ID token ----------------------------------------------------------------------


def claims_of(id_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(id_token, options={"verify_signature": False})
    return claims


def forged(provider: OpenIdProvider, **changes: Any) -> Any:
    """An ID token rewrite: the real one's claims, changed, signed with the
    provider's own key (what only a broken or malicious provider could send)."""

    def rewrite(id_token: str) -> str:
        return provider.sign({**claims_of(id_token), **changes})

    return rewrite


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"aud": "another-client"}, id="wrong-aud"),
        pytest.param(
            {"aud": ["another-client", CLIENT_ID], "azp": "another-client"},
            id="azp-another-client",
        ),
        pytest.param({"iss": "https://evil.example"}, id="wrong-iss"),
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"nonce": "another-flows-nonce"}, id="wrong-nonce"),
    ],
)
async def test_an_id_token_failing_its_checks_is_refused(
    oidc_app: FastAPI,
    browser: httpx.AsyncClient,
    oidc_provider: OpenIdProvider,
    interceptor: Interceptor,
    changes: dict[str, Any],
) -> None:
    if changes.get("exp"):
        changes = {**changes, "iat": changes["exp"] - 60}
    interceptor.id_token = forged(oidc_provider, **changes)
    response = await sign_in(browser, account(VICTIM))
    await refused_for(oidc_app, response, "oidc_id_token_invalid")
    assert await audit(oidc_app, "oidc.linked") == []


async def test_the_provider_key_forgery_is_the_only_change_that_matters(
    browser: httpx.AsyncClient, oidc_provider: OpenIdProvider, interceptor: Interceptor
) -> None:
    """The control of the test above: the same rewrite changing nothing is
    accepted, so the refusals are the changes', not the rewrite's."""
    interceptor.id_token = forged(oidc_provider)
    signed_in(await sign_in(browser, account(VICTIM)))


async def test_an_id_token_signed_by_a_foreign_key_is_refused(
    oidc_app: FastAPI,
    browser: httpx.AsyncClient,
    oidc_provider: OpenIdProvider,
    interceptor: Interceptor,
) -> None:
    """Signed by a key of the attacker's, under the provider's own kid."""
    foreign = new_key()
    interceptor.id_token = lambda token: oidc_provider.sign(claims_of(token), key=foreign)
    response = await sign_in(browser, account(VICTIM))
    await refused_for(oidc_app, response, "oidc_id_token_invalid")


async def test_an_unsigned_id_token_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient, interceptor: Interceptor
) -> None:
    interceptor.id_token = lambda token: jwt.encode(claims_of(token), "", algorithm="none")
    response = await sign_in(browser, account(VICTIM))
    await refused_for(oidc_app, response, "oidc_id_token_invalid")


async def test_an_id_token_replayed_from_another_flow_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient, interceptor: Interceptor
) -> None:
    """A genuine ID token of the victim's, captured from an earlier flow, sent
    in answer to a later one: its nonce is the earlier flow's."""
    signed_in(await sign_in(browser, account(VICTIM)))
    [captured] = interceptor.issued
    interceptor.id_token = lambda _: captured
    async with client_at(oidc_app, ATTACKER_ADDRESS) as attacker:
        response = await sign_in(attacker, account(ATTACKER))
    assert response.status_code == 401, response.text
    [failed] = await audit(oidc_app, "login.failed")
    assert failed["details"]["reason"] == "oidc_id_token_invalid"
    assert len(await audit(oidc_app, "login.succeeded")) == 1  # the victim's own, only


# --- Where the browser goes ------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "http://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/ /evil.example",
        "/\t/evil.example",
        "",
    ],
)
async def test_an_open_redirect_is_not_followed(browser: httpx.AsyncClient, target: str) -> None:
    response = await start(browser, target)
    assert response.status_code == 422, response.text
    assert FLOW_COOKIE not in set_cookies(response)


# --- The provider itself ---------------------------------------------------------------


async def test_a_provider_whose_discovery_names_another_issuer_is_refused(
    app: FastAPI, oidc_provider: OpenIdProvider
) -> None:
    """Configured with a trailing slash, the provider's discovery names its
    issuer without: not the same issuer (OpenID Connect Discovery §4.3), so its
    keys and endpoints are not trusted (a 502 naming both, nothing redirected)."""
    elsewhere = oidc_provider.issuer + "/"
    settings = oidc_provider.settings(issuer=elsewhere)
    async with (
        app_with(app.state.settings, **settings) as misconfigured,
        client_at(misconfigured, ATTACKER_ADDRESS) as client,
    ):
        response = await start(client)
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert elsewhere in detail
    assert f"'{oidc_provider.issuer}'" in detail


# --- Account takeover ------------------------------------------------------------------


async def test_a_pre_registered_account_is_taken_back_by_the_addresss_owner(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """The attacker registers the victim's address with a password of theirs and
    keeps a session, waiting for the victim to sign in with their provider. The
    victim's sign-in claims the account: the attacker's password no longer signs
    in, and the attacker's session is over."""
    async with client_at(oidc_app, ATTACKER_ADDRESS) as attacker:
        planted = (
            await attacker.post("/api/auth/register", json={"email": VICTIM, "password": PASSWORD})
        ).json()
        signed_in(await sign_in(browser, account(VICTIM)))
        await assert_session_ended(attacker, planted)
        relogin = await attacker.post(
            "/api/token/", data={"username": VICTIM, "password": PASSWORD}
        )
        assert relogin.status_code == 401
    user = await user_row(oidc_app, VICTIM)
    assert user["id"] == planted["user"]["id"]
    assert (await browser.get("/api/users/me")).json()["email"] == VICTIM
