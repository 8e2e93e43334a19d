"""IDOR: every operation that takes an id in its path, every method, aimed by one
user at another's resource. Operations come from the app's OpenAPI document."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.security.surface import (
    KNOWN_PATH_PARAMETERS,
    MISSING_PATH_IDS,
    Operation,
    World,
    bearer_operations,
    example_request_body,
    link_to_provider,
    operations,
    operations_with_path_ids,
    populate,
    send,
    snapshot,
)

PATH_ID_OPERATIONS = operations_with_path_ids()
LISTINGS = [op for op in bearer_operations() if op.method == "GET" and not op.path_parameters]
# Listings of the caller's own state that name nobody (a flag and a count): the
# victim's cannot show "victim". tests/security/test_totp_attacks.py aims one
# user's second factor at another's instead.
NAMELESS_LISTINGS = {"GET /api/auth/totp"}


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> World:
    world = await populate(client, admin_tokens)
    await link_to_provider(app, world)
    return world


def missing_url(operation: Operation) -> str:
    path = operation.path
    for parameter in operation.path_parameters:
        path = path.replace(f"{{{parameter}}}", str(MISSING_PATH_IDS[parameter]))
    return path


def test_every_path_id_of_the_api_names_a_resource_the_suite_can_aim_at() -> None:
    used = {name for operation in operations() for name in operation.path_parameters}
    assert used == KNOWN_PATH_PARAMETERS


def test_the_suite_attacks_every_method_on_every_path_with_an_id() -> None:
    # Guards the enumeration itself: an empty list would make the suite vacuous.
    assert {str(op) for op in PATH_ID_OPERATIONS} >= {
        "GET /api/items/{item_id}",
        "PUT /api/items/{item_id}",
        "PATCH /api/items/{item_id}",
        "DELETE /api/items/{item_id}",
        "GET /api/users/{user_id}",
        "PATCH /api/users/{user_id}",
        "DELETE /api/users/{user_id}",
        "GET /api/users/{user_id}/sessions",
        "DELETE /api/users/{user_id}/sessions",
        "DELETE /api/auth/sessions/{session_id}",
        "PUT /api/users/{user_id}/roles",
        "PUT /api/roles/{name}",
        "DELETE /api/roles/{name}",
        "DELETE /api/auth/api-keys/{key_id}",
        "GET /api/users/{user_id}/api-keys",
        "DELETE /api/users/{user_id}/api-keys/{key_id}",
        "DELETE /api/auth/oidc/links/{provider}",
        "PATCH /api/auth/passkeys/{passkey_id}",
        "DELETE /api/auth/passkeys/{passkey_id}",
    }


@pytest.mark.parametrize("operation", PATH_ID_OPERATIONS, ids=str)
def test_every_operation_on_a_path_id_requires_a_bearer(operation: Operation) -> None:
    assert operation.requires_bearer


@pytest.mark.parametrize("operation", PATH_ID_OPERATIONS, ids=str)
async def test_another_users_request_is_refused_like_a_missing_id_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    token = world.attacker["access_token"]
    before = await snapshot(app)
    attack = await send(
        client, operation, world.url(operation), token=token, body=example_request_body(operation)
    )
    assert await snapshot(app) == before
    # Admin routes refuse every non-admin (403); an owned resource of someone else
    # does not exist for the caller (404).
    assert attack.status_code == (403 if operation.admin_only else 404), attack.text
    # The answer says nothing about whether the id exists.
    missing = await send(
        client, operation, missing_url(operation), token=token, body=example_request_body(operation)
    )
    assert (attack.status_code, attack.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("operation", PATH_ID_OPERATIONS, ids=str)
async def test_the_owner_or_an_admin_succeeds_with_the_same_request(
    client: httpx.AsyncClient, world: World, operation: Operation
) -> None:
    """The control: the attack above is refused for who sent it, not for what."""
    token = world.caller(operation)["access_token"]
    response = await send(
        client, operation, world.url(operation), token=token, body=example_request_body(operation)
    )
    assert response.is_success, response.text


@pytest.mark.parametrize("operation", LISTINGS, ids=str)
async def test_no_listing_shows_another_users_data(
    client: httpx.AsyncClient, world: World, operation: Operation
) -> None:
    response = await send(client, operation, operation.path, token=world.attacker["access_token"])
    assert response.status_code == (403 if operation.admin_only else 200), response.text
    assert "victim" not in response.text.lower()
    # The control: the victim's own listing does show them.
    own = await send(
        client, operation, operation.path, token=world.caller(operation)["access_token"]
    )
    assert own.status_code == 200, own.text
    if str(operation) not in NAMELESS_LISTINGS:
        assert "victim" in own.text.lower()
