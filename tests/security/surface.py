"""The API's attack surface, read from the app's own OpenAPI document, and the means
to exercise any operation of it.

The attack suites parametrize over `operations()`, so a new route is attacked like
the others from the moment it exists, or the suite fails until it knows how to
(a new kind of path id, a new token-carrying body).
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.config import Settings
from app.exceptions import PermissionDenied
from tests.auth.passkeys import add_passkey
from tests.auth.soft_authenticator import SoftAuthenticator
from tests.conftest import PASSWORD, TABLES, TEST_SECRET_KEY, bearer, create_item, register

BEARER_SCHEME = "OAuth2PasswordBearer"
WRITE_METHODS = ("POST", "PUT", "PATCH")

# Values the app's own model examples would not supply: format-true defaults.
DEFAULT_FOR_FORMAT = {"email": "someone@example.com", "uri": "https://example.com/x"}
DEFAULT_FOR_TYPE: dict[str, Any] = {
    "string": "value",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
}


@functools.cache
def api_schema() -> Mapping[str, Any]:
    """The OpenAPI document of an app built exactly like the served one. Building it
    touches no database, so it is available while tests are collected."""
    from app.main import create_app

    settings = Settings(_env_file=None, ENVIRONMENT="test", SECRET_KEY=TEST_SECRET_KEY)
    document: dict[str, Any] = create_app(settings).openapi()
    return document


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local `$ref` to the component it names."""
    reference = schema.get("$ref")
    if reference is None:
        return schema
    name = reference.removeprefix("#/components/schemas/")
    component: Mapping[str, Any] = api_schema()["components"]["schemas"][name]
    return component


def without_null(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """`X | None` is `anyOf: [X, null]` in the schema: the X."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            return resolve(branch)
    return resolve(schema)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Mapping[str, Any] = field(compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def parameter_names(self, location: str) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == location]

    @property
    def path_parameters(self) -> list[str]:
        return self.parameter_names("path")

    @property
    def query_parameters(self) -> list[str]:
        return self.parameter_names("query")

    @property
    def requires_bearer(self) -> bool:
        return any(BEARER_SCHEME in requirement for requirement in self.spec.get("security", []))

    @property
    def admin_only(self) -> bool:
        """The app documents PermissionDenied's `403` exactly on admin routes (other
        403s, such as a refused CSRF token, have other details)."""
        refusal = self.spec["responses"].get("403", {})
        example = refusal.get("content", {}).get("application/json", {}).get("example", {})
        return bool(example.get("detail") == PermissionDenied.detail)

    @property
    def json_body(self) -> Mapping[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            return None
        return resolve(content["application/json"]["schema"])


def operations() -> list[Operation]:
    return [
        Operation(method.upper(), path, spec)
        for path, methods in api_schema()["paths"].items()
        for method, spec in methods.items()
    ]


def bearer_operations() -> list[Operation]:
    return [operation for operation in operations() if operation.requires_bearer]


# Operations whose path names no user's resource but a provider of the settings,
# open to anyone (a browser's sign-in), and need one configured to answer more
# than a 404: tests/security/test_oidc_attacks.py attacks them.
SIGN_IN_WITH_A_PROVIDER = {
    "GET /api/auth/oidc/{provider}/start",
    "GET /api/auth/oidc/{provider}/callback",
}


def operations_with_path_ids() -> list[Operation]:
    return [
        operation
        for operation in operations()
        if operation.path_parameters and str(operation) not in SIGN_IN_WITH_A_PROVIDER
    ]


def json_write_operations() -> list[Operation]:
    return [
        operation
        for operation in operations()
        if operation.method in WRITE_METHODS and operation.json_body is not None
    ]


def query_parameters() -> list[tuple[Operation, str]]:
    """Every GET's query parameters, but a provider sign-in's: their values are
    compared with the flow cookie's or sent to the provider, never queried
    (tests/security/test_text_fields.py still sends them any text)."""
    return [
        (operation, name)
        for operation in operations()
        if operation.method == "GET" and str(operation) not in SIGN_IN_WITH_A_PROVIDER
        for name in operation.query_parameters
    ]


def example_value(schema: Mapping[str, Any]) -> Any:
    """A valid value for a property: its documented example, else a default of its
    type (objects are built property by property)."""
    if "examples" in schema:
        return schema["examples"][0]
    concrete = without_null(schema)
    if "examples" in concrete:
        return concrete["examples"][0]
    if "properties" in concrete:
        return example_body(concrete)
    if "format" in concrete and concrete["format"] in DEFAULT_FOR_FORMAT:
        return DEFAULT_FOR_FORMAT[concrete["format"]]
    if "anyOf" in concrete:  # e.g. money: number or string
        return example_value(concrete["anyOf"][0])
    return DEFAULT_FOR_TYPE[concrete["type"]]


def example_body(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A body that sets every property the schema declares, each to a valid value."""
    return {name: example_value(prop) for name, prop in schema.get("properties", {}).items()}


def example_request_body(operation: Operation) -> dict[str, Any] | None:
    """A valid JSON body for the operation, or None when it takes none."""
    schema = operation.json_body
    return example_body(schema) if schema is not None else None


# --- a populated database to aim at ---------------------------------------------


@dataclass
class World:
    """Two ordinary users and an admin. Every URL aims at the `victim`'s resources:
    their item for `item_id`, their account for `user_id`, their second session
    (their phone's, not the one of `victim`'s tokens) for `session_id`, the role
    they hold for `name`. The role `support`, which the role schemas' examples
    name, exists too (held by nobody), so example bodies that grant it work."""

    victim: dict[str, Any]
    attacker: dict[str, Any]
    admin: dict[str, Any]
    victim_item: dict[str, Any]
    victim_session: str
    victim_key: str
    victim_passkey: str
    # The provider the victim's account is linked to (`linked_at_provider`).
    victim_provider: str = "victims-provider"

    def path_id(self, parameter: str) -> int | str:
        ids: dict[str, int | str] = {
            "item_id": self.victim_item["id"],
            "user_id": self.victim["user"]["id"],
            "session_id": self.victim_session,
            "name": VICTIM_ROLE,
            "key_id": self.victim_key,
            "provider": self.victim_provider,
            "passkey_id": self.victim_passkey,
        }
        assert parameter in ids, (
            f"path parameter {parameter!r} is new: teach tests/security/surface.py "
            "which resource it names"
        )
        return ids[parameter]

    def url(self, operation: Operation, **instead: str) -> str:
        """The operation's path aimed at the victim's resources (or at `instead`'s
        value for a parameter named there)."""
        path = operation.path
        for parameter in operation.path_parameters:
            value = instead.get(parameter, self.path_id(parameter))
            path = path.replace(f"{{{parameter}}}", str(value))
        return path

    def caller(self, operation: Operation) -> dict[str, Any]:
        """Who may legitimately call the operation on the victim's resources."""
        return self.admin if operation.admin_only else self.victim


# The path parameters World knows how to aim: the IDOR suite asserts the API has
# exactly these, so a new kind of resource fails until it is added here.
KNOWN_PATH_PARAMETERS = {
    "item_id",
    "user_id",
    "session_id",
    "name",
    "key_id",
    "provider",
    "passkey_id",
}
# The role the victim holds (a harmless one: what everyone holds), and the one the
# role schemas' examples name.
VICTIM_ROLE = "victims-role"
EXAMPLE_ROLE = "support"
# For each, a well-formed id that names nothing.
MISSING_PATH_IDS: dict[str, int | str] = {
    "item_id": 2_000_000_000,  # larger than any id the tests create, within integer
    "user_id": 2_000_000_000,
    "session_id": "5e551075-0000-4000-8000-000000000000",
    "name": "no-such-role",
    "key_id": "5e551075-0000-4000-8000-00000000ce75",
    "provider": "no-such-provider",
    "passkey_id": "5e551075-0000-4000-8000-0000005a55c0",
}


async def populate(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> World:
    victim = await register(client, "victim@example.com", full_name="Victim")
    attacker = await register(client, "attacker@example.com", full_name="Attacker")
    admin = {**admin_tokens, "user": (await me_json(client, admin_tokens["access_token"]))}
    await create_item(client, attacker["access_token"], "Attacker's item")
    await define_role(client, admin["access_token"], EXAMPLE_ROLE, "Support")
    await define_role(client, admin["access_token"], VICTIM_ROLE, "Victim's")
    await grant_roles(client, admin["access_token"], victim["user"]["id"], [VICTIM_ROLE])
    return World(
        victim=victim,
        attacker=attacker,
        admin=admin,
        victim_item=await create_item(client, victim["access_token"], "Victim's item"),
        victim_session=await second_session(client, "victim@example.com", "Victim's phone"),
        victim_key=await api_key(client, victim["access_token"], "Victim's key"),
        victim_passkey=(
            await add_passkey(
                client, victim["access_token"], SoftAuthenticator(), name="Victim's passkey"
            )
        )["id"],
    )


async def link_to_provider(app: FastAPI, world: World) -> None:
    """Link the victim's account to an OpenID provider's, as a sign-in there would
    (the app under attack has no provider configured)."""
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO oidc_identities (user_id, provider, subject, email)"
                " VALUES (:user_id, :provider, 'victims-subject', 'victim@example.com')"
            ),
            {"user_id": world.victim["user"]["id"], "provider": world.victim_provider},
        )


async def define_role(client: httpx.AsyncClient, token: str, name: str, description: str) -> None:
    created = await client.post(
        "/api/roles",
        json={"name": name, "description": description, "permissions": ["items.read"]},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.text


async def grant_roles(
    client: httpx.AsyncClient, token: str, user_id: int, names: list[str]
) -> None:
    granted = await client.put(
        f"/api/users/{user_id}/roles", json={"roles": names}, headers=bearer(token)
    )
    assert granted.status_code == 200, granted.text


async def api_key(client: httpx.AsyncClient, token: str, name: str) -> str:
    """A new API key of the token's user; its id."""
    response = await client.post(
        "/api/auth/api-keys", json={"name": name, "scopes": ["items.read"]}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    key_id: str = response.json()["id"]
    return key_id


async def second_session(client: httpx.AsyncClient, email: str, user_agent: str) -> str:
    """Log in again from another device; its session's id."""
    response = await client.post(
        "/api/token/",
        data={"username": email, "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    listed = await client.get("/api/auth/sessions", headers=bearer(response.json()["access_token"]))
    [current] = [session for session in listed.json() if session["current"]]
    session_id: str = current["id"]
    return session_id


async def me_json(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def snapshot(app: FastAPI) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: equal snapshots mean the request
    changed nothing."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with app.state.engine.connect() as connection:
        for table in (name.strip() for name in TABLES.split(",")):
            result = await connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            rows[table] = sorted((tuple(row) for row in result), key=repr)
    return rows


async def send(
    client: httpx.AsyncClient,
    operation: Operation,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    return await client.request(
        operation.method, url, json=body, headers=headers, params=params or None
    )
