"""Sign in with OpenID Connect, against a real provider (tests/oidc/provider.py):
the whole authorization-code dance with PKCE, through the provider's own login
and consent pages, ending in the cookie session of a password login. Which
account a sign-in is (created, known, linked, claimed, refused), the second
factor, and the user's links, listed and unlinked."""

import httpx
from fastapi import FastAPI

from tests.auth.cookie_sessions import ACCESS, CSRF, CSRF_HEADER, set_cookies
from tests.auth.second_factor import TotpClock, enable
from tests.conftest import (
    ATTACKER_ADDRESS,
    CLIENT_ADDRESS,
    PASSWORD,
    app_with,
    assert_session_ended,
    bearer,
    client_at,
    login,
    register,
)
from tests.mail.helpers import outbox, rows
from tests.oidc.helpers import audit, links_of, signed_in, user_row, verified_account
from tests.oidc.provider import PROVIDER, OpenIdProvider, account, sign_in

LINKS = "/api/auth/oidc/links"
EMAIL = "grace@example.com"


async def test_a_new_user_is_created_verified_with_no_password(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    response = await sign_in(browser, account(EMAIL))
    signed_in(response)
    user = await user_row(oidc_app, EMAIL)
    assert user["is_verified"] is True
    assert user["hashed_password"] == ""
    [link] = await links_of(oidc_app, user["id"])
    assert (link["provider"], link["subject"], link["email"]) == (
        PROVIDER,
        account(EMAIL),
        EMAIL,
    )
    [linked] = await audit(oidc_app, "oidc.linked")
    assert linked["details"] == {"provider": PROVIDER, "email": EMAIL, "how": "created"}
    [succeeded] = await audit(oidc_app, "login.succeeded")
    assert succeeded["details"]["method"] == "oidc"
    assert succeeded["details"]["provider"] == PROVIDER
    # No password can sign in to it, not even an empty one.
    refused = await browser.post("/api/token/", data={"username": EMAIL, "password": "anything"})
    assert refused.status_code == 401


async def test_the_cookie_session_works_after_the_callback(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    signed_in(await sign_in(browser, account(EMAIL)))
    me = await browser.get("/api/users/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == EMAIL
    listed = await browser.get(LINKS)
    assert [link["provider"] for link in listed.json()] == [PROVIDER]
    # An unsafe request with the session's CSRF token (the readable cookie).
    logout = await browser.post(
        "/api/auth/logout-all", headers={CSRF_HEADER: browser.cookies[CSRF]}
    )
    assert logout.status_code == 204, logout.text
    assert (await browser.get("/api/users/me")).status_code == 401


async def test_a_known_subject_signs_in_again_to_the_same_account(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    signed_in(await sign_in(browser, account(EMAIL)))
    signed_in(await sign_in(browser, account(EMAIL)))
    users = await rows(oidc_app, "SELECT id FROM users")
    assert len(users) == 1
    assert len(await links_of(oidc_app, users[0]["id"])) == 1
    assert len(await audit(oidc_app, "login.succeeded")) == 2
    assert len(await audit(oidc_app, "oidc.linked")) == 1


async def test_redirect_to_is_honoured_when_a_path_on_this_site(
    browser: httpx.AsyncClient,
) -> None:
    response = await sign_in(browser, account(EMAIL), redirect_to="/account?tab=links")
    signed_in(response, "/account?tab=links")


async def test_an_existing_verified_account_is_linked_and_its_owner_told(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """The rule for a verified account: the provider asserted the same address,
    verified, so its account is linked; the password and sessions stay, and the
    owner gets a notice."""
    registered = await verified_account(browser, oidc_app, EMAIL)
    mails_before = len(await outbox(oidc_app))
    signed_in(await sign_in(browser, account(EMAIL)))
    user = await user_row(oidc_app, EMAIL)
    assert user["id"] == registered["user"]["id"]
    assert len(await links_of(oidc_app, user["id"])) == 1
    [linked] = await audit(oidc_app, "oidc.linked")
    assert linked["details"]["how"] == "linked"
    notices = (await outbox(oidc_app))[mails_before:]
    assert any(
        mail["recipient"] == EMAIL and f"{PROVIDER} can now sign in" in mail["subject"]
        for mail in notices
    ), notices
    # Nothing of the account's was taken: its password and its session still work.
    await login(browser, EMAIL)
    assert (
        await browser.get("/api/users/me", headers=bearer(registered["access_token"]))
    ).status_code == 200


async def test_an_unverified_account_is_claimed_password_void_sessions_ended(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """Whoever registered the address never proved it; the provider proved it is
    this person's: the account is theirs, and its registrant keeps no way in."""
    async with client_at(oidc_app, ATTACKER_ADDRESS) as other:
        registered = await register(other, EMAIL)
    signed_in(await sign_in(browser, account(EMAIL)))
    user = await user_row(oidc_app, EMAIL)
    assert user["id"] == registered["user"]["id"]
    assert user["is_verified"] is True
    assert user["hashed_password"] == ""
    await assert_session_ended(browser, registered)
    [linked] = await audit(oidc_app, "oidc.linked")
    assert linked["details"]["how"] == "claimed"


async def test_a_provider_email_not_verified_is_refused(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    response = await sign_in(browser, account(EMAIL, verified=False))
    assert response.status_code == 401, response.text
    assert ACCESS not in set_cookies(response)
    assert await rows(oidc_app, "SELECT id FROM users") == []
    [failed] = await audit(oidc_app, "login.failed")
    assert failed["details"] == {"reason": "oidc_email_unverified", "provider": PROVIDER}


async def test_an_unverified_provider_email_matching_an_account_is_refused_too(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    registered = await verified_account(browser, oidc_app, EMAIL)
    response = await sign_in(browser, account(EMAIL, verified=False))
    assert response.status_code == 401
    assert await links_of(oidc_app, registered["user"]["id"]) == []


async def test_links_are_listed_and_unlinked_but_never_the_last_way_in(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    signed_in(await sign_in(browser, account(EMAIL)))
    csrf = {CSRF_HEADER: browser.cookies[CSRF]}
    listed = await browser.get(LINKS)
    assert listed.status_code == 200
    [link] = listed.json()
    assert (link["provider"], link["email"]) == (PROVIDER, EMAIL)
    # No password and one link: unlinking would lock the user out.
    refused = await browser.delete(f"{LINKS}/{PROVIDER}", headers=csrf)
    assert refused.status_code == 409, refused.text
    assert len((await browser.get(LINKS)).json()) == 1
    missing = await browser.delete(f"{LINKS}/other", headers=csrf)
    assert missing.status_code == 404


async def test_an_account_with_a_password_may_unlink(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    await verified_account(browser, oidc_app, EMAIL)
    signed_in(await sign_in(browser, account(EMAIL)))
    csrf = {CSRF_HEADER: browser.cookies[CSRF]}
    response = await browser.delete(f"{LINKS}/{PROVIDER}", headers=csrf)
    assert response.status_code == 204, response.text
    assert (await browser.get(LINKS)).json() == []
    [unlinked] = await audit(oidc_app, "oidc.unlinked")
    assert unlinked["details"] == {"provider": PROVIDER}
    # The provider's account is a stranger again: signing in links it anew.
    signed_in(await sign_in(browser, account(EMAIL)))
    assert len(await audit(oidc_app, "oidc.linked")) == 2


async def test_an_account_with_a_second_factor_gets_the_second_step(
    oidc_app: FastAPI, browser: httpx.AsyncClient, totp_clock: TotpClock
) -> None:
    registered = await verified_account(browser, oidc_app, EMAIL)
    enabled = await enable(browser, registered["access_token"], totp_clock)
    browser.cookies.clear()
    response = await sign_in(browser, account(EMAIL), redirect_to="/home")
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/home#oidc_second_factor=")
    assert ACCESS not in set_cookies(response)  # no session yet
    challenge = location.partition("=")[2]
    second = await browser.post(
        "/api/auth/cookie/second-factor",
        json={"challenge": challenge, "code": totp_clock.code(enabled.secret)},
    )
    assert second.status_code == 200, second.text
    assert (await browser.get("/api/users/me")).json()["email"] == EMAIL


async def test_the_password_still_signs_in_a_linked_account(
    oidc_app: FastAPI, browser: httpx.AsyncClient
) -> None:
    await verified_account(browser, oidc_app, EMAIL)
    signed_in(await sign_in(browser, account(EMAIL)))
    assert (await login(browser, EMAIL, PASSWORD))["access_token"]


async def test_the_providers_client_opens_at_the_first_sign_in_and_closes_with_the_app(
    app: FastAPI, oidc_provider: OpenIdProvider
) -> None:
    """A worker that never signs anyone in through a provider holds no client (its
    SSL context with the CA bundle costs each worker ~2 MB)."""
    async with app_with(app.state.settings, **oidc_provider.settings()) as application:
        providers = application.state.oidc
        async with client_at(application, CLIENT_ADDRESS) as http:
            assert (await http.get("/api/health")).status_code == 200
            assert providers._http is None
            signed_in(await sign_in(http, account(EMAIL)))
        client = providers._http
        assert client is not None
    assert client.is_closed
    assert providers._http is None
