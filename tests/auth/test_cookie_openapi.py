"""The OpenAPI document describes cookie sessions: the cookie routes, and the
access cookie (with the CSRF header on unsafe methods) as the alternative to the
bearer wherever a bearer is accepted."""

from typing import Any

import httpx
import pytest

from app.exceptions import PermissionDenied

SAFE = {"get", "head", "options"}


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/openapi.json")).json()
    return body


def bearer_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if {"OAuth2PasswordBearer": []} in operation.get("security", [])
    ]


async def test_the_cookie_and_the_csrf_header_are_security_schemes(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["AccessCookie"] | {"description": ""} == {
        "type": "apiKey",
        "in": "cookie",
        "name": "__Host-access",
        "description": "",
    }
    assert schemes["CsrfHeader"]["type"] == "apiKey"
    assert schemes["CsrfHeader"]["in"] == "header"
    assert schemes["CsrfHeader"]["name"] == "X-CSRF-Token"
    assert "403" in schemes["CsrfHeader"]["description"]


async def test_every_bearer_operation_also_takes_the_cookie_and_unsafe_ones_the_csrf_header(
    schema: dict[str, Any],
) -> None:
    operations = bearer_operations(schema)
    assert len(operations) >= 14
    for method, path, operation in operations:
        alternatives = operation["security"][1:]
        if method in SAFE:
            assert alternatives == [{"AccessCookie": []}], (method, path)
            continue
        assert alternatives == [{"AccessCookie": [], "CsrfHeader": []}], (method, path)
        refusal = operation["responses"]["403"]
        assert "CSRF token" in refusal["description"], (method, path)
        documented = refusal["content"]["application/json"]
        assert documented["schema"] == {"$ref": "#/components/schemas/ErrorDetail"}


async def test_admin_routes_keep_their_privilege_403_beside_the_csrf_one(
    schema: dict[str, Any],
) -> None:
    refusal = schema["paths"]["/api/users/{user_id}"]["patch"]["responses"]["403"]
    assert refusal["content"]["application/json"]["example"] == {"detail": PermissionDenied.detail}
    assert "CSRF token" in refusal["description"]


async def test_the_cookie_routes_are_documented(schema: dict[str, Any]) -> None:
    login = schema["paths"]["/api/auth/cookie/login"]["post"]
    assert set(login["requestBody"]["content"]) == {"application/json"}
    assert login["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CookieLoginOut"
    }
    assert {"401", "429", "422"} <= set(login["responses"])
    login_out = schema["components"]["schemas"]["CookieLoginOut"]["properties"]
    assert set(login_out) == {"user", "csrf_token", "expires_in"}  # no token in the body
    for name, success in (("refresh", "200"), ("logout", "204")):
        operation = schema["paths"][f"/api/auth/cookie/{name}"]["post"]
        assert {success, "401", "403"} <= set(operation["responses"]), name
        parameters = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert parameters == {
            ("cookie", "__Secure-refresh"),
            ("cookie", "__Host-csrf"),
            ("header", "X-CSRF-Token"),
        }, name
        assert operation["tags"] == ["auth"]
