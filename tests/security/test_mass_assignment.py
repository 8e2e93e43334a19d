"""Mass assignment: every JSON write body of the API (from its OpenAPI document) ×
every field it does not declare that a model could be fooled into storing (every
column of every table, output-only fields, classic privilege names) → 422 naming
that field, and the database unchanged."""

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables in SQLModel.metadata)
from tests.conftest import PASSWORD, bearer
from tests.security.surface import (
    Operation,
    World,
    api_schema,
    example_body,
    json_write_operations,
    populate,
    send,
    snapshot,
    without_null,
)

# Classic names for privilege that no table happens to use (yet).
CLASSIC_PRIVILEGE_FIELDS = {"role", "roles", "scopes", "is_admin", "admin", "permissions"}
# A request body may set these only on an admin route.
PRIVILEGED_FIELDS = {
    "id",
    "owner_id",
    "user_id",
    "is_superuser",
    "is_active",
    "is_verified",
    "hashed_password",
}


def assignable_fields() -> set[str]:
    columns = {column.name for table in SQLModel.metadata.tables.values() for column in table.c}
    output_only = {
        name
        for schema in api_schema()["components"]["schemas"].values()
        for name, prop in schema.get("properties", {}).items()
        if prop.get("readOnly")
    }
    return columns | output_only | CLASSIC_PRIVILEGE_FIELDS | {"total"}


def smuggled_value(field: str) -> Any:
    """A value of the shape the field would have, so only its presence is wrong."""
    if field == "id" or field.endswith("_id"):
        return 1
    if field.startswith("is_"):
        return True
    if field.endswith("_at"):
        return "2000-01-01T00:00:00Z"
    return "smuggled"


def declared(schema: Mapping[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def nested_objects(
    schema: Mapping[str, Any], location: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every object schema inside a body, with where it sits in the body."""
    for name, prop in schema.get("properties", {}).items():
        concrete = without_null(prop)
        if "properties" in concrete:
            yield (*location, name), concrete
            yield from nested_objects(concrete, (*location, name))


NESTED_CASES = [
    pytest.param(operation, location, id=f"{operation} {'.'.join(location)}")
    for operation in json_write_operations()
    for location, _ in nested_objects(operation.json_body or {})
]


@pytest.fixture
async def world(client: httpx.AsyncClient, admin_tokens: dict[str, Any]) -> World:
    return await populate(client, admin_tokens)


async def send_body(
    client: httpx.AsyncClient, world: World, operation: Operation, body: dict[str, Any]
) -> httpx.Response:
    token = world.caller(operation)["access_token"] if operation.requires_bearer else None
    return await send(client, operation, world.url(operation), token=token, body=body)


def refusal(response: httpx.Response) -> tuple[int, Any]:
    """The status and, for a 422, its list of problems as (type, location)."""
    if response.status_code != 422:
        return response.status_code, response.text
    return 422, [(problem["type"], tuple(problem["loc"])) for problem in response.json()["detail"]]


def refused_for(location: tuple[str, ...]) -> tuple[int, Any]:
    """Exactly one problem, the smuggled field: the rest of the body was valid, so
    nothing else could have caused the refusal."""
    return 422, [("extra_forbidden", ("body", *location))]


def test_every_json_body_and_object_in_it_forbids_undeclared_fields() -> None:
    schemas = [op.json_body for op in json_write_operations()]
    objects = [obj for schema in schemas for _, obj in nested_objects(schema or {})]
    for schema in [*schemas, *objects]:
        assert schema is not None
        assert schema.get("additionalProperties") is False, schema.get("title")


@pytest.mark.parametrize("operation", json_write_operations(), ids=str)
def test_only_admin_operations_declare_privileged_fields(operation: Operation) -> None:
    if declared(operation.json_body or {}) & PRIVILEGED_FIELDS:
        assert operation.admin_only


def test_the_suite_knows_every_write_body_and_every_stored_field() -> None:
    # Guards the enumeration itself: without these the parametrization is vacuous.
    titles = {(op.json_body or {}).get("title") for op in json_write_operations()}
    assert {"UserRegister", "UserUpdateMe", "UserUpdateAdmin", "ItemCreate", "ItemPatch"} <= titles
    assert {"owner_id", "is_superuser", "hashed_password", "created_at", "jti"} <= (
        assignable_fields()
    )


@pytest.mark.parametrize("operation", json_write_operations(), ids=str)
async def test_every_smuggled_field_is_422_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, world: World, operation: Operation
) -> None:
    body = example_body(operation.json_body or {})
    fields = sorted(assignable_fields() - declared(operation.json_body or {}))
    before = await snapshot(app)
    outcomes = {
        field: refusal(
            await send_body(client, world, operation, {**body, field: smuggled_value(field)})
        )
        for field in fields
    }
    assert outcomes == {field: refused_for((field,)) for field in fields}
    assert await snapshot(app) == before


@pytest.mark.parametrize(("operation", "location"), NESTED_CASES)
async def test_a_field_smuggled_into_a_nested_object_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    operation: Operation,
    location: tuple[str, ...],
) -> None:
    body = example_body(operation.json_body or {})
    target = body
    for name in location:
        target = target[name]
    target["owner_id"] = smuggled_value("owner_id")
    before = await snapshot(app)
    response = await send_body(client, world, operation, body)
    assert refusal(response) == refused_for((*location, "owner_id"))
    assert await snapshot(app) == before


async def test_the_login_form_reads_only_the_credentials(
    client: httpx.AsyncClient, world: World
) -> None:
    """The OAuth2 form is the one body that cannot refuse extras (the standard
    defines optional fields): they must be ignored, never applied."""
    response = await client.post(
        "/api/token/",
        data={
            "username": "victim@example.com",
            "password": PASSWORD,
            "is_superuser": "true",
            "scope": "admin",
            "user_id": str(world.admin["user"]["id"]),
        },
    )
    assert response.status_code == 200, response.text
    who = await client.get("/api/users/me", headers=bearer(response.json()["access_token"]))
    assert who.json() == world.victim["user"]
