"""Malformed input is a 4xx the OpenAPI documents, never a 500: NUL bytes, lone
surrogates, deep JSON, numbers beyond the columns, oversized bodies. And a 422
tells what was wrong without echoing secrets or megabytes back."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, bearer, create_item

INT_MAX = 2_147_483_647
BODY_LIMIT = 1_048_576  # the default MAX_REQUEST_BODY_BYTES
NUL = "\x00"


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/openapi.json")).json()
    return body


def _assert_422_naming(response: httpx.Response, loc: list[str | int]) -> None:
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert loc in locations, locations


def _raw_json(body: dict[str, Any]) -> bytes:
    """json.dumps escapes a lone surrogate as \\udXXX: valid JSON text that no
    UTF-8 encoder accepts once decoded, as an attacker would send it."""
    return json.dumps(body, ensure_ascii=True).encode()


# --- NUL bytes -------------------------------------------------------------------

ITEM = {"name": "Lamp", "price": 10}


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/auth/register", {"email": f"a{NUL}@example.com", "password": PASSWORD}, "email"),
        ("/api/auth/register", {"email": "a@example.com", "password": PASSWORD + NUL}, "password"),
        (
            "/api/auth/register",
            {"email": "a@example.com", "password": PASSWORD, "full_name": f"Ada{NUL}"},
            "full_name",
        ),
        ("/api/token/", {"email": f"ada{NUL}@example.com", "password": PASSWORD}, "email"),
        ("/api/token/", {"email": "ada@example.com", "password": f"{NUL}x"}, "password"),
        ("/api/token/refresh", {"refresh_token": f"x{NUL}"}, "refresh_token"),
        ("/api/token/verify", {"token": f"x{NUL}"}, "token"),
        ("/api/auth/logout", {"refresh_token": NUL}, "refresh_token"),
    ],
)
async def test_nul_in_an_anonymous_body_field_is_a_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], loc: str
) -> None:
    response = await client.post(path, json=body)
    _assert_422_naming(response, ["body", loc])


async def test_nul_in_the_login_form_username_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/token/", data={"username": f"ada{NUL}@example.com", "password": PASSWORD}
    )
    _assert_422_naming(response, ["body", "username"])


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"name": f"La{NUL}mp"}, ["body", "name"]),
        ({"description": f"{NUL}"}, ["body", "description"]),
        ({"tags": ["ok", f"b{NUL}d"]}, ["body", "tags"]),
        (
            {"image": {"url": "https://example.com/a.png", "name": f"front{NUL}"}},
            ["body", "image", "name"],
        ),
    ],
)
async def test_nul_in_an_item_field_is_a_422_naming_the_field(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], fields: dict[str, Any], loc: list[Any]
) -> None:
    headers = bearer(user_tokens["access_token"])
    created = await client.post("/api/items/", json={**ITEM, **fields}, headers=headers)
    _assert_422_naming(created, loc)
    item = await create_item(client, user_tokens["access_token"])
    patched = await client.patch(f"/api/items/{item['id']}", json=fields, headers=headers)
    _assert_422_naming(patched, loc)


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/users/me", {"full_name": f"Ada{NUL}"}, "full_name"),
        ("/api/users/me", {"email": f"ada{NUL}@example.com"}, "email"),
        (
            "/api/users/me/password",
            {"current_password": f"{PASSWORD}{NUL}", "new_password": "another password"},
            "current_password",
        ),
        (
            "/api/users/me/password",
            {"current_password": PASSWORD, "new_password": f"another{NUL}password"},
            "new_password",
        ),
    ],
)
async def test_nul_in_an_account_field_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    path: str,
    body: dict[str, Any],
    loc: str,
) -> None:
    method = "POST" if path.endswith("password") else "PATCH"
    response = await client.request(
        method, path, json=body, headers=bearer(user_tokens["access_token"])
    )
    _assert_422_naming(response, ["body", loc])


@pytest.mark.parametrize("parameter", ["q", "tag"])
async def test_nul_in_a_query_parameter_is_a_422_naming_it(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], parameter: str
) -> None:
    response = await client.get(
        "/api/items/",
        params={parameter: f"lamp{NUL}"},
        headers=bearer(user_tokens["access_token"]),
    )
    _assert_422_naming(response, ["query", parameter])


# --- Unpaired surrogates -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/auth/register", {"email": "a\ud800@example.com", "password": PASSWORD}, "email"),
        ("/api/auth/register", {"email": "a@example.com", "password": "\udfff" * 9}, "password"),
        ("/api/token/", {"email": "ada@example.com", "password": "pass\ud83d"}, "password"),
        ("/api/token/refresh", {"refresh_token": "\udc00"}, "refresh_token"),
    ],
)
async def test_a_lone_surrogate_in_a_json_string_is_a_422_whose_body_is_json(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], loc: str
) -> None:
    response = await client.post(
        path, content=_raw_json(body), headers={"Content-Type": "application/json"}
    )
    _assert_422_naming(response, ["body", loc])
    assert response.headers["content-type"] == "application/json"
    response.content.decode("utf-8")  # strict: the answer itself is valid UTF-8


async def test_a_lone_surrogate_in_an_item_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    headers = {**bearer(user_tokens["access_token"]), "Content-Type": "application/json"}
    body = {"name": "Lamp", "price": 10, "tags": ["\ud800"], "description": "\udbff"}
    response = await client.post("/api/items/", content=_raw_json(body), headers=headers)
    _assert_422_naming(response, ["body", "description"])
    _assert_422_naming(response, ["body", "tags"])
    listed = await client.get("/api/items/", headers=headers)
    assert listed.json()["total"] == 0


# --- Deeply nested and undecodable JSON ---------------------------------------------


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [500, 100_000])
async def test_deeply_nested_json_at_the_token_endpoint_is_a_documented_client_error(
    client: httpx.AsyncClient, depth: int
) -> None:
    body = b'{"email": "ada@example.com", "password": ' + _nested(depth) + b"}"
    response = await client.post(
        "/api/token/", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()
    documented = (await _openapi(client))["paths"]["/api/token/"]["post"]["responses"]
    assert str(response.status_code) in documented


@pytest.mark.parametrize("depth", [500, 100_000])
async def test_deeply_nested_json_in_a_body_field_is_a_documented_client_error(
    client: httpx.AsyncClient, depth: int
) -> None:
    body = b'{"email": "ada@example.com", "password": "long enough", "full_name": '
    response = await client.post(
        "/api/auth/register",
        content=body + _nested(depth) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()
    documented = (await _openapi(client))["paths"]["/api/auth/register"]["post"]["responses"]
    assert str(response.status_code) in documented


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/token/"])
async def test_a_body_that_is_not_utf8_is_a_documented_client_error(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(
        path, content=b'{"email": "\xff\xfe"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()
    documented = (await _openapi(client))["paths"][path]["post"]["responses"]
    assert str(response.status_code) in documented


async def test_an_empty_login_is_a_422_the_openapi_documents(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/token/")
    assert response.status_code == 422
    documented = (await _openapi(client))["paths"]["/api/token/"]["post"]["responses"]
    assert documented["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }


# --- Numbers beyond what the columns hold ------------------------------------------

OUT_OF_RANGE_IDS = [INT_MAX + 1, 2**63, 10**40, 0, -1]


@pytest.mark.parametrize("item_id", OUT_OF_RANGE_IDS)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_an_item_id_outside_the_integer_column_is_a_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], method: str, item_id: int
) -> None:
    response = await client.request(
        method,
        f"/api/items/{item_id}",
        json=ITEM if method in ("PUT", "PATCH") else None,
        headers=bearer(user_tokens["access_token"]),
    )
    _assert_422_naming(response, ["path", "item_id"])


@pytest.mark.parametrize("user_id", OUT_OF_RANGE_IDS)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_a_user_id_outside_the_integer_column_is_a_422(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], method: str, user_id: int
) -> None:
    response = await client.request(
        method,
        f"/api/users/{user_id}",
        json={"full_name": "X"} if method == "PATCH" else None,
        headers=bearer(admin_tokens["access_token"]),
    )
    _assert_422_naming(response, ["path", "user_id"])


async def test_a_user_id_beyond_the_column_is_a_422_for_a_non_admin_too(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.get(f"/api/users/{2**63}", headers=bearer(user_tokens["access_token"]))
    assert response.status_code in (403, 422)


async def test_the_largest_integer_id_is_a_plain_404(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], admin_tokens: dict[str, Any]
) -> None:
    item = await client.get(f"/api/items/{INT_MAX}", headers=bearer(user_tokens["access_token"]))
    assert item.status_code == 404
    user = await client.get(f"/api/users/{INT_MAX}", headers=bearer(admin_tokens["access_token"]))
    assert user.status_code == 404


@pytest.mark.parametrize("offset", [2**63, 10**30, INT_MAX + 1])
async def test_an_offset_beyond_the_bound_is_a_422(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], offset: int
) -> None:
    for path in ("/api/items/", "/api/users/"):
        response = await client.get(
            path, params={"offset": offset}, headers=bearer(admin_tokens["access_token"])
        )
        _assert_422_naming(response, ["query", "offset"])


async def test_the_largest_offset_is_an_empty_page(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.get(
        "/api/items/", params={"offset": INT_MAX}, headers=bearer(user_tokens["access_token"])
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


@pytest.mark.parametrize("value", ["1e131073", "1e-131073", "10000000000", "NaN", "Infinity"])
@pytest.mark.parametrize("parameter", ["min_price", "max_price"])
async def test_a_price_filter_beyond_numeric_12_2_is_a_422(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], parameter: str, value: str
) -> None:
    response = await client.get(
        "/api/items/", params={parameter: value}, headers=bearer(user_tokens["access_token"])
    )
    _assert_422_naming(response, ["query", parameter])


async def test_the_largest_price_filter_still_filters(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    token = user_tokens["access_token"]
    await create_item(client, token, price="9999999999.99")
    response = await client.get(
        "/api/items/", params={"min_price": "9999999999.99"}, headers=bearer(token)
    )
    assert response.status_code == 200
    assert response.json()["total"] == 1


# --- What a 422 says back ---------------------------------------------------------


def _inputs(response: httpx.Response) -> list[Any]:
    return [error.get("input") for error in response.json()["detail"]]


async def test_a_422_never_echoes_a_password(client: httpx.AsyncClient) -> None:
    secret = "short\u00e9"  # too short: refused, and must not come back
    cases = [
        ("/api/auth/register", {"email": "ada@example.com", "password": secret}),
        ("/api/auth/register", {"email": "not an email", "password": secret}),
        ("/api/auth/register", {"password": secret}),  # missing email: input is the body
        ("/api/token/", {"password": secret}),
        ("/api/token/refresh", {"refresh_token": secret, "extra": 1}),
    ]
    for path, body in cases:
        response = await client.post(path, json=body)
        assert response.status_code == 422, (path, body)
        assert secret not in response.text, (path, body, response.text)
        assert all(error.keys() >= {"loc", "msg", "type"} for error in response.json()["detail"])


async def test_a_422_never_echoes_the_new_or_current_password(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    secret = "tiny\u00e9"
    response = await client.post(
        "/api/users/me/password",
        json={"current_password": secret, "new_password": secret},
        headers=bearer(user_tokens["access_token"]),
    )
    assert response.status_code == 422
    assert secret not in response.text


async def test_a_422_echoes_a_short_bad_value_to_help_the_caller(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.get(
        "/api/items/", params={"sort": "colour"}, headers=bearer(user_tokens["access_token"])
    )
    assert response.status_code == 422
    assert _inputs(response) == ["colour"]


async def test_a_422_does_not_echo_a_huge_value(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    huge = "x" * 900_000
    response = await client.post(
        "/api/items/",
        json={"name": huge, "price": 1},
        headers=bearer(user_tokens["access_token"]),
    )
    _assert_422_naming(response, ["body", "name"])
    assert len(response.content) < 2_000


async def test_a_422_does_not_echo_a_whole_nested_value(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/items/",
        json={"name": {"nested": ["x" * 1000] * 500}, "price": 1},
        headers=bearer(user_tokens["access_token"]),
    )
    _assert_422_naming(response, ["body", "name"])
    assert len(response.content) < 2_000


# --- The body size limit --------------------------------------------------------------


async def test_a_body_over_the_limit_is_a_413_with_a_json_detail(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"email": "' + b"a" * BODY_LIMIT + b'"}'
    response = await client.post(
        "/api/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "detail" in response.json()


async def test_a_chunked_body_over_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"email": "'
        for _ in range(64):  # 4 MiB in all, with no Content-Length to trust
            chunks_sent += 1
            yield b"a" * 65_536
        yield b'"}'

    response = await client.post(
        "/api/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "detail" in response.json()


async def test_a_body_within_the_limit_is_read(client: httpx.AsyncClient) -> None:
    padding = " " * (BODY_LIMIT - 200)
    body = f'{{"email": "ada@example.com", "password": "{PASSWORD}"{padding}}}'.encode()
    assert len(body) <= BODY_LIMIT
    response = await client.post(
        "/api/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_every_operation_documents_the_413(client: httpx.AsyncClient) -> None:
    for path, operations in (await _openapi(client))["paths"].items():
        for method, operation in operations.items():
            too_large = operation["responses"].get("413")
            assert too_large, (method, path)
            schema = too_large["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorDetail"}
