"""Schemathesis against the live OpenAPI, over real HTTP, on every operation, as a
user and as an admin: no server error, no undocumented status code, no answer
that breaks its documented schema or content type.

Each case runs with a fresh account (and, for an admin, a fresh second user), so
a case that deletes, deactivates or logs out its caller cannot blind the cases
after it. Path ids are the caller's own item, the other user or the caller's
session for half of the cases, so success paths are exercised, not only 404s."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.schema.common import MAX_ID
from tests.security.live_server import LiveServer, openapi_document, serve

OperationCase = Case[Any]  # of any operation
SEED = 20_260_611
# Per operation, phase and role. ~20 operations x 2 roles: about a minute on 2 cores.
MAX_EXAMPLES = 25
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    with serve(settings) as server:
        yield server
        server.empty_tables()


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # valid and invalid inputs alike
            "max-examples": MAX_EXAMPLES,
            "database": "none",  # no replay of examples saved by earlier runs: the seed decides
        },
        "phases": {"stateful": {"enabled": False}},
    }
)
# Loaded at collection time: Schemathesis' fixture-loaded (lazy) schemas do not
# work with this pytest; a test below checks the live server serves this document.
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as client:
        yield client


def _seed_targets(
    live: LiveServer, http: httpx.Client, *, admin: bool
) -> tuple[dict[str, str], dict[str, int | str]]:
    """A fresh caller, an item of theirs, their session, and (for an admin) another
    user."""
    caller = live.register(http, admin=admin)
    item = http.post(
        f"{live.base_url}/api/items/",
        json={"name": "Seed", "price": 10, "tags": ["seed"]},
        headers=caller.headers,
    )
    assert item.status_code == 201, item.text
    other = live.register(http) if admin else caller
    [session] = http.get(f"{live.base_url}/api/auth/sessions", headers=caller.headers).json()
    return caller.headers, {
        "item_id": item.json()["id"],
        "user_id": other.id,
        "session_id": session["id"],
    }


def _valid_and_even(drawn: object) -> bool:
    if isinstance(drawn, int):
        return 1 <= drawn <= MAX_ID and drawn % 2 == 0
    try:
        return isinstance(drawn, str) and uuid.UUID(drawn).int % 2 == 0
    except ValueError:
        return False


def _aim_at_existing(case: OperationCase, targets: dict[str, int | str]) -> None:
    """Half the valid ids drawn (the even ones) become the seeded item, user or
    session, so reads, updates and deletes succeed too; invalid ids are kept as
    drawn."""
    for name, existing_id in targets.items():
        drawn = (case.path_parameters or {}).get(name)
        if _valid_and_even(drawn):
            case.path_parameters[name] = existing_id


def _call_as(
    case: OperationCase,
    *,
    admin: bool,
    live: LiveServer,
    http: httpx.Client,
    session: requests.Session,
) -> None:
    headers, targets = _seed_targets(live, http, admin=admin)
    _aim_at_existing(case, targets)
    case.call_and_validate(base_url=live.base_url, session=session, headers=headers, checks=CHECKS)


@schema.parametrize()
def test_the_api_honours_its_openapi_as_a_user(
    case: OperationCase, live: LiveServer, http: httpx.Client, session: requests.Session
) -> None:
    _call_as(case, admin=False, live=live, http=http, session=session)


@schema.parametrize()
def test_the_api_honours_its_openapi_as_an_admin(
    case: OperationCase, live: LiveServer, http: httpx.Client, session: requests.Session
) -> None:
    _call_as(case, admin=True, live=live, http=http, session=session)


def test_the_fuzzed_document_is_the_one_the_live_server_serves(live: LiveServer) -> None:
    assert httpx.get(f"{live.base_url}/openapi.json").json() == openapi_document()
