import re
from typing import Any

import httpx
import pytest


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_the_authorize_button_uses_the_password_flow_at_api_token(
    schema: dict[str, Any],
) -> None:
    schemes = schema["components"]["securitySchemes"]
    [oauth2] = [name for name, scheme in schemes.items() if scheme["type"] == "oauth2"]
    assert schemes[oauth2]["flows"]["password"]["tokenUrl"] == "/api/token/"
    # The bearer is every protected operation's first requirement: what /docs uses.
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("security"):
                assert operation["security"][0] == {oauth2: []}


async def test_every_operation_has_a_tag_and_a_summary(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("tags"), (method, path)
            assert operation.get("summary"), (method, path)


async def test_protected_operations_document_their_401(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):
                assert "401" in operation["responses"], (method, path)


@pytest.mark.parametrize(
    ("path", "method", "code"),
    [
        ("/api/auth/register", "post", "409"),
        ("/api/token/", "post", "401"),
        ("/api/token/", "post", "429"),
        ("/api/items/{item_id}", "get", "404"),
        ("/api/items/", "get", "400"),
        ("/api/users/", "get", "400"),
        ("/api/users/", "get", "403"),
        ("/api/auth/sessions/{session_id}", "delete", "404"),
        ("/api/users/{user_id}/sessions", "get", "404"),
        ("/api/users/{user_id}/sessions", "delete", "403"),
        ("/api/users/me/password", "post", "400"),
        ("/api/health/ready", "get", "503"),
        ("/api/token/", "post", "403"),
        ("/api/auth/password-recovery", "post", "429"),
        ("/api/auth/reset-password", "post", "400"),
        ("/api/auth/verify-email", "post", "400"),
        ("/api/auth/verify-email/resend", "post", "429"),
        ("/api/auth/verify-email", "post", "409"),
        ("/api/auth/secure-account", "post", "400"),
        ("/api/users/me", "patch", "400"),
        ("/api/users/me", "patch", "409"),
        ("/api/users/me", "patch", "429"),
        ("/api/auth/oidc/{provider}/callback", "get", "401"),
        ("/api/auth/oidc/{provider}/start", "get", "502"),
        ("/api/auth/oidc/links/{provider}", "delete", "409"),
        ("/api/auth/passkeys", "post", "400"),
        ("/api/auth/passkeys", "post", "409"),
        ("/api/auth/passkeys/{passkey_id}", "delete", "409"),
        ("/api/auth/passkeys/{passkey_id}", "patch", "404"),
        ("/api/token/passkey", "post", "401"),
        ("/api/token/passkey", "post", "429"),
        ("/api/auth/cookie/passkey", "post", "401"),
    ],
)
async def test_domain_errors_are_documented(
    schema: dict[str, Any], path: str, method: str, code: str
) -> None:
    response = schema["paths"][path][method]["responses"][code]
    documented = response["content"]["application/json"]
    assert documented["schema"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert "detail" in documented["example"]


@pytest.mark.parametrize(
    ("path", "page"), [("/api/items/", "Page_ItemOut_"), ("/api/users/", "Page_UserOut_")]
)
async def test_lists_document_the_cursor_next_and_whether_the_total_is_exact(
    schema: dict[str, Any], path: str, page: str
) -> None:
    parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
    assert {"limit", "offset", "cursor"} <= set(parameters)
    assert "slow" in parameters["offset"]["description"]
    assert "`next`" in parameters["cursor"]["description"]
    fields = schema["components"]["schemas"][page]["properties"]
    assert {"items", "total", "total_exact", "limit", "offset", "next"} == set(fields)
    assert fields["total_exact"]["type"] == "boolean"
    assert "estimate" in fields["total"]["description"]
    assert "cursor" in fields["next"]["description"]


async def test_the_token_endpoint_documents_form_and_json_bodies(schema: dict[str, Any]) -> None:
    content = schema["paths"]["/api/token/"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}


async def test_schemas_carry_examples(schema: dict[str, Any]) -> None:
    item = schema["components"]["schemas"]["ItemCreate"]["properties"]
    assert item["price"].get("examples")
    assert "description" in item["price"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_every_asset_from_the_app_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources, "the page references no assets"
    for source in sources:
        assert source.startswith("/"), f"{page} loads {source} from elsewhere"
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.content) > 1000, source


async def test_swagger_ui_is_configured_for_the_password_flow(client: httpx.AsyncClient) -> None:
    docs = (await client.get("/docs")).text
    assert "'/openapi.json'" in docs or '"/openapi.json"' in docs
    assert "/docs/oauth2-redirect" in docs
    assert '"persistAuthorization": true' in docs
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "oauth2" in redirect.text.lower()


@pytest.mark.parametrize(
    ("path", "code", "body"),
    [
        ("/api/auth/password-recovery", "202", "MailQueued"),
        ("/api/auth/verify-email/resend", "202", "MailQueued"),
        ("/api/auth/reset-password", "204", None),
        ("/api/auth/verify-email", "204", None),
        ("/api/auth/secure-account", "204", None),
    ],
)
async def test_the_mail_endpoints_document_their_success(
    schema: dict[str, Any], path: str, code: str, body: str | None
) -> None:
    operation = schema["paths"][path]["post"]
    assert operation["tags"] == ["auth"]
    success = operation["responses"][code]
    if body is None:
        assert "content" not in success
    else:
        reference = success["content"]["application/json"]["schema"]["$ref"]
        assert reference == f"#/components/schemas/{body}"


async def test_the_pages_mailed_links_open_are_not_api_operations(schema: dict[str, Any]) -> None:
    assert "/reset-password" not in schema["paths"]
    assert "/verify-email" not in schema["paths"]
    assert "/secure-account" not in schema["paths"]
