"""Forged tokens wherever the API reads one: the bearer of every protected
operation, and every body field that carries a token (verify, refresh, logout),
all read from the app's OpenAPI document. Each forgery (tests/security/forge.py:
algorithms, keys, every claim, expiry) gets the same 401 and changes nothing."""

import base64
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.auth.cookie_sessions import cookie_login
from tests.conftest import bearer, register
from tests.security.forge import (
    bad_access_tokens,
    bad_refresh_tokens,
    foreign_sessions,
    foreign_subject,
)
from tests.security.surface import (
    Operation,
    World,
    bearer_operations,
    example_request_body,
    json_write_operations,
    populate,
    send,
    snapshot,
)

REFUSED = (401, "Bearer", {"detail": "Could not validate credentials"})
# Body fields that carry a token, and which kind each must be.
TOKEN_FIELDS = {"token": "access", "refresh_token": "refresh"}
# Where `token` is a mailed single-use token, not a JWT: attacked in
# tests/security/test_mailed_tokens.py.
MAILED_TOKEN_READERS = {
    "POST /api/auth/reset-password",
    "POST /api/auth/verify-email",
    "POST /api/auth/secure-account",
}
TOKEN_READERS = [
    pytest.param(operation, name, id=f"{operation} {name}")
    for operation in json_write_operations()
    if str(operation) not in MAILED_TOKEN_READERS
    for name in (operation.json_body or {}).get("properties", {})
    if name in TOKEN_FIELDS
]


@pytest.fixture
async def world(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> World:
    return await populate(client, admin_tokens)


def outcome(response: httpx.Response) -> tuple[int, str | None, Any]:
    body = response.json() if response.content else None
    return response.status_code, response.headers.get("WWW-Authenticate"), body


def other_than(world: World, pair: dict[str, Any]) -> dict[str, Any]:
    return world.victim if pair is not world.victim else world.attacker


def test_every_body_field_that_carries_a_token_is_known() -> None:
    carried = {
        name
        for operation in json_write_operations()
        for name in (operation.json_body or {}).get("properties", {})
        if "token" in name
    }
    assert carried == set(TOKEN_FIELDS)


def test_the_suite_attacks_every_bearer_operation_and_token_reader() -> None:
    # Guards the enumeration itself: an empty list would make the suite vacuous.
    assert len(bearer_operations()) >= 14
    assert {str(param.values[0]) for param in TOKEN_READERS} == {
        "POST /api/token/verify",
        "POST /api/token/refresh",
        "POST /api/auth/logout",
    }


@pytest.mark.parametrize("operation", bearer_operations(), ids=str)
async def test_every_forged_bearer_is_401_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    # Forged from the token of whoever may call it: an admin's, on admin routes.
    pair = world.caller(operation)
    forgeries = bad_access_tokens(pair, other=other_than(world, pair))
    body = example_request_body(operation)
    before = await snapshot(app)
    outcomes = {
        variant: outcome(
            await send(client, operation, world.url(operation), token=token, body=body)
        )
        for variant, token in forgeries.items()
    }
    assert outcomes == dict.fromkeys(forgeries, REFUSED)
    assert await snapshot(app) == before


@pytest.mark.parametrize("operation", bearer_operations(), ids=str)
async def test_the_genuine_bearer_is_accepted_by_every_operation(
    client: httpx.AsyncClient, world: World, operation: Operation
) -> None:
    """The control: the forgeries above fail for what they changed."""
    pair = world.caller(operation)
    response = await send(
        client,
        operation,
        world.url(operation),
        token=pair["access_token"],
        body=example_request_body(operation),
    )
    assert response.status_code not in (401, 403), response.text


@pytest.mark.parametrize("operation", bearer_operations(), ids=str)
async def test_a_token_anywhere_but_a_bearer_header_is_401(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    token = world.caller(operation)["access_token"]
    basic = base64.b64encode(f"user:{token}".encode()).decode()
    misplaced: dict[str, dict[str, Any]] = {
        "no header": {},
        "empty bearer": {"headers": {"Authorization": "Bearer "}},
        "scheme only": {"headers": {"Authorization": "Bearer"}},
        "no scheme": {"headers": {"Authorization": token}},
        "Basic scheme": {"headers": {"Authorization": f"Basic {basic}"}},
        "Token scheme": {"headers": {"Authorization": f"Token {token}"}},
        "query string": {"params": {"access_token": token}},
        "cookie": {"headers": {"Cookie": f"access_token={token}"}},
    }
    body = example_request_body(operation)
    before = await snapshot(app)
    outcomes = {}
    for name, where in misplaced.items():
        response = await client.request(operation.method, world.url(operation), json=body, **where)
        outcomes[name] = response.status_code, response.headers.get("WWW-Authenticate")
    assert outcomes == dict.fromkeys(misplaced, (401, "Bearer"))
    assert await snapshot(app) == before


async def assert_session_intact(client: httpx.AsyncClient, pair: dict[str, Any]) -> None:
    """Nothing was spent or revoked: the genuine refresh token still rotates, and
    the new pair is the same user's."""
    rotated = await client.post("/api/token/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    who = await client.get("/api/users/me", headers=bearer(rotated.json()["access_token"]))
    assert who.json() == pair["user"]


@pytest.mark.parametrize(("operation", "field"), TOKEN_READERS)
async def test_every_forged_token_in_a_body_is_401_and_the_session_survives(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation, field: str
) -> None:
    if TOKEN_FIELDS[field] == "access":
        forgeries = bad_access_tokens(world.victim, other=world.attacker)
    else:
        forgeries = bad_refresh_tokens(world.victim)
    before = await snapshot(app)
    outcomes = {
        variant: outcome(await send(client, operation, operation.path, body={field: token}))
        for variant, token in forgeries.items()
    }
    assert outcomes == dict.fromkeys(forgeries, REFUSED)
    assert await snapshot(app) == before
    await assert_session_intact(client, world.victim)


REFRESH_READERS = [param for param in TOKEN_READERS if param.values[1] == "refresh_token"]


async def assert_spent_in_vain(
    client: httpx.AsyncClient,
    app: FastAPI,
    operation: Operation,
    field: str,
    forgeries: dict[str, str],
) -> None:
    """Each forged refresh token is refused (or a no-op logout): nothing is issued
    and not a row of the database changes."""
    before = await snapshot(app)
    for token in forgeries.values():
        response = await send(client, operation, operation.path, body={field: token})
        assert response.status_code in (204, 401), response.text
        assert "access_token" not in response.text
    assert await snapshot(app) == before


@pytest.mark.parametrize(("operation", "field"), REFRESH_READERS)
async def test_a_refresh_token_naming_no_session_or_anothers_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation, field: str
) -> None:
    """Signed with the real key yet naming a session that is not the user's: no
    session is spent, revoked or renewed, no token is issued."""
    forgeries = foreign_sessions(
        world.victim["refresh_token"], other=world.attacker["refresh_token"]
    )
    await assert_spent_in_vain(client, app, operation, field, forgeries)
    await assert_session_intact(client, world.victim)
    await assert_session_intact(client, world.attacker)


@pytest.mark.parametrize(("operation", "field"), REFRESH_READERS)
async def test_a_refresh_token_whose_sub_is_not_its_sessions_user_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation, field: str
) -> None:
    """The victim's own session and token id, signed with the real key, but `sub`
    naming another user: the victim's token is not spent and the session lives."""
    forgeries = foreign_subject(
        world.victim["refresh_token"], other=world.attacker["refresh_token"]
    )
    await assert_spent_in_vain(client, app, operation, field, forgeries)
    await assert_session_intact(client, world.victim)


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "garbage"], ids=str
)
async def test_an_authorization_header_that_is_no_bearer_does_not_fall_back_to_the_cookie(
    client: httpx.AsyncClient, authorization: str
) -> None:
    """The access cookie is consulted only when no Authorization header is sent:
    a header the app cannot use is a 401, whatever cookie comes with it."""
    await register(client, "carol@example.com")
    browser = await cookie_login(client, "carol@example.com")
    headers = {**browser.headers(), "Authorization": authorization}
    response = await client.get("/api/users/me", headers=headers)
    assert (response.status_code, response.headers.get("WWW-Authenticate")) == (401, "Bearer")
