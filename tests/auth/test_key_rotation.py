"""Rotating the signing key, performed: apps with the settings of each step of
docs/operations.md's "Rotating secrets" run one after the other on the same database. Tokens
issued before a rotation keep working (access, refresh, device alike), new ones
name the new key, and once the previous key is removed its tokens are refused."""

from pathlib import Path
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.signing_keys import hmac_kid, jwk_thumbprint
from devtools.embedded_postgres import EmbeddedPostgres
from tests.auth.keys import (
    NEW_SECRET,
    OLD_SECRET,
    ed25519_key,
    eddsa,
    hs256,
    private_pem,
    public_pem,
)
from tests.conftest import (
    CLIENT_ADDRESS,
    PASSWORD,
    app_loaded,
    app_with,
    client_at,
    login,
    me,
    register,
)
from tests.security.forge import claims_of, forge

REFUSED = (401, "Bearer", {"detail": "Could not validate credentials"})
DEVICE_COOKIE = "login_device"


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def refused(response: httpx.Response) -> tuple[int, str | None, Any]:
    return response.status_code, response.headers.get("WWW-Authenticate"), response.json()


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/api/token/refresh", json={"refresh_token": token})


async def issued_before(app: FastAPI) -> dict[str, Any]:
    """What a client holds when the key changes: a session it will refresh, one
    it will not touch, and the device cookie of its login."""
    async with client_at(app, CLIENT_ADDRESS) as http:
        refreshed_later = await register(http)
        untouched = await login(http)
        device = http.cookies[DEVICE_COOKIE]
    return {"refreshed_later": refreshed_later, "untouched": untouched, "device": device}


async def login_with_device(http: httpx.AsyncClient, device: str) -> httpx.Response:
    response = await http.post(
        "/api/token/",
        data={"username": "ada@example.com", "password": PASSWORD},
        headers={"Cookie": f"{DEVICE_COOKIE}={device}"},
    )
    assert response.status_code == 200, response.text
    return response


async def assert_old_tokens_still_work(app: FastAPI, held: dict[str, Any], new_kid: str) -> str:
    """During the rotation: the old access token and device cookie are accepted,
    the old refresh token trades for a pair naming the new key. Returns that
    pair's access token."""
    async with client_at(app, CLIENT_ADDRESS) as http:
        assert (await me(http, held["untouched"]["access_token"])).status_code == 200
        rotated = await refresh(http, held["refreshed_later"]["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        pair = rotated.json()
        assert kid_of(pair["access_token"]) == kid_of(pair["refresh_token"]) == new_kid
        assert (await me(http, pair["access_token"])).status_code == 200
        # A known device: the login does not replace its cookie.
        assert DEVICE_COOKIE not in (await login_with_device(http, held["device"])).cookies
    access_token: str = pair["access_token"]
    return access_token


async def assert_old_tokens_refused(app: FastAPI, held: dict[str, Any], new_access: str) -> None:
    """After the previous key is removed: its tokens get the 401 of any invalid
    token, the new key's tokens still work."""
    async with client_at(app, CLIENT_ADDRESS) as http:
        assert refused(await me(http, held["untouched"]["access_token"])) == REFUSED
        assert refused(await refresh(http, held["untouched"]["refresh_token"])) == REFUSED
        assert (await me(http, new_access)).status_code == 200
        # The device cookie is no longer recognised: the login hands out a new one.
        replaced = await login_with_device(http, held["device"])
        assert kid_of(replaced.cookies[DEVICE_COOKIE]) == kid_of(new_access)


async def test_rotating_the_hmac_secret_keeps_everyone_logged_in(
    app: FastAPI, settings: Settings
) -> None:
    async with app_with(settings, **hs256(OLD_SECRET)) as before:
        held = await issued_before(before)
    untouched = held["untouched"]
    for token in (untouched["access_token"], untouched["refresh_token"], held["device"]):
        assert kid_of(token) == hmac_kid(OLD_SECRET)

    # Step 1: SECRET_KEY_PREVIOUS=<old>, SECRET_KEY=<new>, deploy.
    async with app_with(settings, **hs256(NEW_SECRET, OLD_SECRET)) as during:
        new_access = await assert_old_tokens_still_work(during, held, hmac_kid(NEW_SECRET))

    # Step 2, after REFRESH_TOKEN_TTL: SECRET_KEY_PREVIOUS emptied, deploy.
    async with app_with(settings, **hs256(NEW_SECRET)) as after:
        await assert_old_tokens_refused(after, held, new_access)


async def jwks_of(app: FastAPI) -> dict[str, Any]:
    async with client_at(app, CLIENT_ADDRESS) as http:
        response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def verified_by_another_service(token: str, jwks: dict[str, Any], settings: Settings) -> str:
    """What a service holding nothing but the JWKS does: the key the token's kid
    names, its algorithm, the audience. Returns the token's subject."""
    key = jwt.PyJWKSet.from_dict(jwks)[kid_of(token)]
    claims = jwt.decode(token, key, algorithms=[key.algorithm_name], audience=settings.JWT_AUDIENCE)
    subject: str = claims["sub"]
    return subject


async def test_rotating_the_ed25519_key_files_keeps_everyone_logged_in(
    app: FastAPI, settings: Settings, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Each step restarts the app (app_loaded), which reads the key files again."""
    old, new = ed25519_key("rotation old"), ed25519_key("rotation new")
    key_file, retired_file = tmp_path / "jwt-key.pem", tmp_path / "jwt-retired.pem"
    key_file.write_text(private_pem(old))
    signing_with_the_file = {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY_FILE": key_file}
    async with app_loaded(postgres, **signing_with_the_file) as before:
        held = await issued_before(before)
        published_before = await jwks_of(before)
    old_kid, new_kid = jwk_thumbprint(old.public_key()), jwk_thumbprint(new.public_key())
    assert kid_of(held["untouched"]["access_token"]) == old_kid
    assert [key["kid"] for key in published_before["keys"]] == [old_kid]

    # Step 1: the old public key appended to the retired file, a new private key.
    retired_file.write_text(public_pem(old))
    key_file.write_text(private_pem(new))
    rotated = {**signing_with_the_file, "JWT_PUBLIC_KEYS_PREVIOUS_FILE": retired_file}
    async with app_loaded(postgres, **rotated) as during:
        new_access = await assert_old_tokens_still_work(during, held, new_kid)
        published = await jwks_of(during)
    assert [key["kid"] for key in published["keys"]] == [new_kid, old_kid]
    # Another service verifies tokens of both keys from the published set alone.
    user_id = str(held["refreshed_later"]["user"]["id"])
    for token in (held["untouched"]["access_token"], new_access):
        assert verified_by_another_service(token, published, settings) == user_id

    # Step 2, after REFRESH_TOKEN_TTL: the retired file emptied.
    retired_file.write_text("")
    async with app_loaded(postgres, **rotated) as after:
        await assert_old_tokens_refused(after, held, new_access)
        assert [key["kid"] for key in (await jwks_of(after))["keys"]] == [new_kid]


async def test_moving_from_hs256_to_eddsa_keeps_everyone_logged_in(
    app: FastAPI, settings: Settings
) -> None:
    """The old HMAC secret verifies its tokens as a previous key while Ed25519 signs."""
    async with app_with(settings, **hs256(OLD_SECRET)) as before:
        held = await issued_before(before)
    key = ed25519_key("migration")
    new_secret = SecretStr(NEW_SECRET)
    moved = eddsa(key, SECRET_KEY=new_secret, SECRET_KEY_PREVIOUS=[SecretStr(OLD_SECRET)])
    async with app_with(settings, **moved) as during:
        new_access = await assert_old_tokens_still_work(
            during, held, jwk_thumbprint(key.public_key())
        )
    async with app_with(settings, **eddsa(key, SECRET_KEY=new_secret)) as after:
        await assert_old_tokens_refused(after, held, new_access)


async def test_a_token_without_a_kid_is_refused_unless_the_transition_allows_it(
    app: FastAPI, settings: Settings, user_tokens: dict[str, Any]
) -> None:
    """Tokens of the release before key ids: HS256 with SECRET_KEY and no kid.
    Refused by default; accepted while JWT_REQUIRE_KID=false, checked with the
    HMAC keys only."""
    kidless = forge(claims_of(user_tokens["access_token"]), kid=None)
    async with client_at(app, CLIENT_ADDRESS) as http:
        assert refused(await me(http, kidless)) == REFUSED
    async with (
        app_with(settings, JWT_REQUIRE_KID=False) as transition,
        client_at(transition, CLIENT_ADDRESS) as http,
    ):
        assert (await me(http, kidless)).status_code == 200
        assert (await me(http, user_tokens["access_token"])).status_code == 200
        another_key = forge(claims_of(user_tokens["access_token"]), key=NEW_SECRET, kid=None)
        assert refused(await me(http, another_key)) == REFUSED
