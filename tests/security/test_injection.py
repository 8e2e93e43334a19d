"""Injection: every query parameter of every GET and every path id (from the app's
OpenAPI document) × SQL, LIKE, JSON/array-literal and unicode metacharacters, NUL,
invalid UTF-8 and out-of-range numbers → a 200 or a 422 naming the parameter (a 404
for a path id), never a 500; free-text filters match literally;
the tables are intact afterwards."""

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from app.services.cursors import MALFORMED as MALFORMED_CURSOR
from tests.conftest import bearer, create_item
from tests.security.surface import (
    Operation,
    World,
    example_request_body,
    operations_with_path_ids,
    populate,
    query_parameters,
    send,
    snapshot,
    without_null,
)

SQL = [
    "'",
    '"',
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE items; --",
    "1; DROP TABLE users",
    "1) OR (1=1",
    "$$",
    "$$; DROP TABLE items; $$",
    "$1",
    "%s",
    "%(id)s",
    ":id",
    "?",
    ";",
    "--",
    "/*",
]
LIKE = ["%", "_", "\\", "\\%", "\\_", "%%", "%_%", "a%b", "[a-z]", "^", ".*"]
JSON_AND_ARRAYS = ["{}", '{"a": 1}', "[]", "{a,b}", '{"}', "NULL", "null", "true", "-1", "1e3"]
UNICODE = ["é", "☕€", "日本", "𝕏", "\u202e", "\u200b", "ǅ", "😀" * 60, " ", "\t", "\n", "\r\n"]
TOO_LONG = ["x" * 201]
# Postgres text cannot hold NUL; integer, bigint and NUMERIC have bounds.
NUL = ["\x00", "a\x00b"]
OUT_OF_RANGE = [str(2**31), str(2**63), str(-(2**63) - 1), "1" + "0" * 30, "1e999999", "1e-999999"]
PAYLOADS = SQL + LIKE + JSON_AND_ARRAYS + UNICODE + TOO_LONG + NUL + OUT_OF_RANGE
PATH_PAYLOADS = [*SQL, *LIKE, *JSON_AND_ARRAYS, *NUL, *OUT_OF_RANGE, "0", "1.5", "0x10", "é", "😀"]
# Sent as they are, percent-encoded: invalid UTF-8, a lone surrogate, overlong "/".
RAW_QUERY_VALUES = ["%FF%FE", "%ED%A0%80", "%C0%AF", "%00"]

# Free-text query parameters and what matching them means. Every string parameter
# of the API without an enum must be here, so a new one declares its semantics.
LITERAL_FILTERS = {
    ("GET /api/items/", "q"): "substring of name or description, any case",
    ("GET /api/items/", "tag"): "one of the tags, exactly",
}
# Free text that is a token the API made: decoded and checked, never searched; a
# value it did not make is a 400 that says so (app/services/cursors.py).
OPAQUE_TOKENS = {
    ("GET /api/items/", "cursor"): "the `next` of an earlier page",
    ("GET /api/users/", "cursor"): "the `next` of an earlier page",
}


@pytest.fixture
async def raw_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Answers an app exception with the 500 a real client would see, so one bad
    payload does not hide what the others do."""
    transport = httpx.ASGITransport(
        app=app, client=("203.0.113.7", 40000), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def world(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> World:
    return await populate(client, admin_tokens)


def is_free_text(operation: Operation, name: str) -> bool:
    [parameter] = [p for p in operation.spec["parameters"] if p["name"] == name]
    schema = without_null(parameter["schema"])
    # A `format` (a date-time) is parsed, not searched: no literal semantics to declare.
    return schema.get("type") == "string" and "enum" not in schema and "format" not in schema


def acceptable(response: httpx.Response, location: list[str], *, opaque: bool = False) -> bool:
    """A success, or a validation error about this parameter and nothing else (for
    an opaque token, the 400 refusing it)."""
    if response.status_code == 422:
        return all(problem["loc"] == location for problem in response.json()["detail"])
    if opaque and response.status_code == 400:
        return bool(response.json() == {"detail": MALFORMED_CURSOR})
    return response.is_success


def test_every_free_text_query_parameter_has_declared_literal_semantics() -> None:
    free_text = {
        (str(operation), name)
        for operation, name in query_parameters()
        if is_free_text(operation, name)
    }
    assert free_text == set(LITERAL_FILTERS) | set(OPAQUE_TOKENS)


@pytest.mark.parametrize(
    ("operation", "name"),
    [pytest.param(*case, id=f"{case[0]} {case[1]}") for case in query_parameters()],
)
async def test_every_payload_in_a_query_parameter_is_200_or_a_422_naming_it(
    raw_client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation, name: str
) -> None:
    token = world.caller(operation)["access_token"]
    opaque = (str(operation), name) in OPAQUE_TOKENS
    before = await snapshot(app)
    unexpected = {}
    for payload in PAYLOADS:
        response = await raw_client.get(
            operation.path, params={name: payload}, headers=bearer(token)
        )
        if not acceptable(response, ["query", name], opaque=opaque):
            unexpected[payload] = (response.status_code, response.text[:200])
    for raw in RAW_QUERY_VALUES:
        response = await raw_client.get(f"{operation.path}?{name}={raw}", headers=bearer(token))
        if not acceptable(response, ["query", name], opaque=opaque):
            unexpected[raw] = (response.status_code, response.text[:200])
    assert unexpected == {}
    assert await snapshot(app) == before


@pytest.mark.parametrize("operation", operations_with_path_ids(), ids=str)
async def test_every_payload_in_a_path_id_is_refused_without_a_500(
    raw_client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    token = world.caller(operation)["access_token"]
    before = await snapshot(app)
    unexpected = {}
    # Each path parameter in turn; the others name the world's resources.
    for name in operation.path_parameters:
        for payload in PATH_PAYLOADS:
            url = world.url(operation, **{name: quote(payload, safe="")})
            response = await send(
                raw_client, operation, url, token=token, body=example_request_body(operation)
            )
            # No payload names an existing resource: 404 (or 422 for a non-integer).
            refused = response.status_code == 404 or (
                response.status_code == 422 and acceptable(response, ["path", name])
            )
            if not refused:
                unexpected[f"{name}={payload}"] = (response.status_code, response.text[:200])
    assert unexpected == {}
    assert await snapshot(app) == before


# --- literal matching -------------------------------------------------------------

# Payloads whose lower case is unambiguous in any database locale: the expected
# matches can be computed here without knowing the server's collation.
LITERAL_PAYLOADS = [
    p for p in SQL + LIKE + JSON_AND_ARRAYS + ["☕€", "日本", "𝕏"] if p.isascii() or p == p.lower()
]


async def seed_corpus(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    """An item per payload, named and tagged with it, and decoys with none."""
    items = [
        await create_item(client, token, f"<{payload}>", tags=[payload])
        for payload in LITERAL_PAYLOADS
    ]
    for decoy in ("plain", "Plain text", "a-b", "100 percent"):
        items.append(await create_item(client, token, decoy, tags=["decoy"]))
    return items


async def matching_ids(client: httpx.AsyncClient, token: str, params: dict[str, str]) -> set[int]:
    response = await client.get(
        "/api/items/", params={**params, "limit": "100"}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_q_matches_each_payload_literally(
    client: httpx.AsyncClient, app: FastAPI, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    corpus = await seed_corpus(client, token)
    everything = {item["id"] for item in corpus}
    before = await snapshot(app)
    found = {p: await matching_ids(client, token, {"q": p}) for p in LITERAL_PAYLOADS}
    expected = {
        p: {item["id"] for item in corpus if p.lower() in item["name"].lower()}
        for p in LITERAL_PAYLOADS
    }
    assert found == expected
    # Wildcards matched only items holding them: the check above could fail.
    assert expected["%"] < everything
    assert expected["_"] < everything
    assert await snapshot(app) == before


async def test_tag_matches_each_payload_exactly(
    client: httpx.AsyncClient, app: FastAPI, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    corpus = await seed_corpus(client, token)
    before = await snapshot(app)
    found = {p: await matching_ids(client, token, {"tag": p}) for p in LITERAL_PAYLOADS}
    expected = {p: {item["id"] for item in corpus if p in item["tags"]} for p in LITERAL_PAYLOADS}
    assert found == expected
    assert all(len(ids) == 1 for ids in expected.values())
    assert await snapshot(app) == before
