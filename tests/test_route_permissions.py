"""What each route requires, read from the app's own routes: every authenticated
operation declares one permission (`Depends(requires(...))`, app/policy.py),
and the declarations are listed here so a change to them is a visible diff."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.config import Settings
from app.dependencies import Requirement, get_current_user
from app.policy import Permission

P = Permission
DECLARED: dict[tuple[str, str], Permission] = {
    ("GET", "/api/users/me"): P.PROFILE_READ,
    ("PATCH", "/api/users/me"): P.PROFILE_WRITE,
    ("POST", "/api/users/me/password"): P.PROFILE_WRITE,
    ("DELETE", "/api/users/me"): P.PROFILE_WRITE,
    ("GET", "/api/users/"): P.USERS_READ,
    ("GET", "/api/users/{user_id}"): P.USERS_READ,
    ("PATCH", "/api/users/{user_id}"): P.USERS_WRITE,
    ("DELETE", "/api/users/{user_id}"): P.USERS_WRITE,
    ("GET", "/api/users/{user_id}/sessions"): P.USERS_SESSIONS,
    ("DELETE", "/api/users/{user_id}/sessions"): P.USERS_SESSIONS,
    ("PUT", "/api/users/{user_id}/roles"): P.ROLES_MANAGE,
    ("GET", "/api/users/me/permissions"): P.PROFILE_READ,
    ("GET", "/api/users/me/events"): P.PROFILE_READ,
    ("GET", "/api/audit/events"): P.AUDIT_READ,
    ("GET", "/api/roles"): P.ROLES_MANAGE,
    ("POST", "/api/roles"): P.ROLES_MANAGE,
    ("PUT", "/api/roles/{name}"): P.ROLES_MANAGE,
    ("DELETE", "/api/roles/{name}"): P.ROLES_MANAGE,
    ("POST", "/api/items/"): P.ITEMS_WRITE,
    ("GET", "/api/items/"): P.ITEMS_READ,
    ("GET", "/api/items/{item_id}"): P.ITEMS_READ,
    ("PUT", "/api/items/{item_id}"): P.ITEMS_WRITE,
    ("PATCH", "/api/items/{item_id}"): P.ITEMS_WRITE,
    ("DELETE", "/api/items/{item_id}"): P.ITEMS_WRITE,
    ("POST", "/api/auth/logout-all"): P.PROFILE_WRITE,
    ("GET", "/api/auth/sessions"): P.PROFILE_READ,
    ("DELETE", "/api/auth/sessions/{session_id}"): P.PROFILE_WRITE,
    ("POST", "/api/auth/api-keys"): P.PROFILE_WRITE,
    ("GET", "/api/auth/api-keys"): P.PROFILE_READ,
    ("DELETE", "/api/auth/api-keys/{key_id}"): P.PROFILE_WRITE,
    ("GET", "/api/auth/totp"): P.PROFILE_READ,
    ("POST", "/api/auth/totp/setup"): P.PROFILE_WRITE,
    ("POST", "/api/auth/totp/confirm"): P.PROFILE_WRITE,
    ("POST", "/api/auth/totp/disable"): P.PROFILE_WRITE,
    ("POST", "/api/auth/totp/recovery-codes"): P.PROFILE_WRITE,
    ("GET", "/api/users/{user_id}/api-keys"): P.USERS_SESSIONS,
    ("DELETE", "/api/users/{user_id}/api-keys/{key_id}"): P.USERS_SESSIONS,
    ("GET", "/api/auth/oidc/links"): P.PROFILE_READ,
    ("DELETE", "/api/auth/oidc/links/{provider}"): P.PROFILE_WRITE,
    ("POST", "/api/auth/passkeys/register/options"): P.PROFILE_WRITE,
    ("POST", "/api/auth/passkeys"): P.PROFILE_WRITE,
    ("GET", "/api/auth/passkeys"): P.PROFILE_READ,
    ("PATCH", "/api/auth/passkeys/{passkey_id}"): P.PROFILE_WRITE,
    ("DELETE", "/api/auth/passkeys/{passkey_id}"): P.PROFILE_WRITE,
}
# What only a signed-in session may do (`requires(..., api_keys=False)`): create
# or manage keys, change a password, an email, roles or an account, end
# sessions, set up or turn off the second factor, unlink an OpenID provider,
# register, rename or remove a passkey. An
# API key is refused there whatever its scopes (tests/security/test_api_key_attacks.py
# derives its cases from the routes).
SESSION_ONLY = {
    ("PATCH", "/api/users/me"),
    ("POST", "/api/users/me/password"),
    ("DELETE", "/api/users/me"),
    ("PATCH", "/api/users/{user_id}"),
    ("DELETE", "/api/users/{user_id}"),
    ("DELETE", "/api/users/{user_id}/sessions"),
    ("PUT", "/api/users/{user_id}/roles"),
    ("DELETE", "/api/users/{user_id}/api-keys/{key_id}"),
    ("POST", "/api/roles"),
    ("PUT", "/api/roles/{name}"),
    ("DELETE", "/api/roles/{name}"),
    ("POST", "/api/auth/logout-all"),
    ("DELETE", "/api/auth/sessions/{session_id}"),
    ("POST", "/api/auth/api-keys"),
    ("GET", "/api/auth/api-keys"),
    ("DELETE", "/api/auth/api-keys/{key_id}"),
    ("POST", "/api/auth/totp/setup"),
    ("POST", "/api/auth/totp/confirm"),
    ("POST", "/api/auth/totp/disable"),
    ("POST", "/api/auth/totp/recovery-codes"),
    ("DELETE", "/api/auth/oidc/links/{provider}"),
    ("POST", "/api/auth/passkeys/register/options"),
    ("POST", "/api/auth/passkeys"),
    ("PATCH", "/api/auth/passkeys/{passkey_id}"),
    ("DELETE", "/api/auth/passkeys/{passkey_id}"),
}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def operations(app: FastAPI) -> Iterator[tuple[tuple[str, str], list[Any]]]:
    """Each operation with every dependency it resolves, its routers' included, as
    the OpenAPI document is generated from them (FastAPI's route contexts)."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            calls = list(_calls(route.dependant))
            for method in sorted(route.methods or ()):
                yield (method, route.path_format or ""), calls


@pytest.fixture(scope="module")
def built(settings: Settings) -> FastAPI:
    """The app as served, its routes built; never started (no pools are needed)."""
    from app.main import create_app

    return create_app(settings)


def declared(app: FastAPI) -> dict[tuple[str, str], list[Permission]]:
    return {
        operation: [call.permission for call in calls if isinstance(call, Requirement)]
        for operation, calls in operations(app)
    }


def session_only(app: FastAPI) -> set[tuple[str, str]]:
    return {
        operation
        for operation, calls in operations(app)
        if any(isinstance(call, Requirement) and not call.api_keys for call in calls)
    }


def authenticated(app: FastAPI) -> set[tuple[str, str]]:
    return {
        operation
        for operation, calls in operations(app)
        if any(c is get_current_user for c in calls)
    }


def test_each_route_declares_the_permission_listed_here(built: FastAPI) -> None:
    found = {
        operation: permissions for operation, permissions in declared(built).items() if permissions
    }
    assert found == {operation: [permission] for operation, permission in DECLARED.items()}


def test_every_authenticated_route_declares_a_permission(built: FastAPI) -> None:
    undeclared = {operation for operation in authenticated(built) if not declared(built)[operation]}
    assert undeclared == set()


def test_the_routes_an_api_key_may_never_use_are_listed_here(built: FastAPI) -> None:
    assert session_only(built) == SESSION_ONLY


def test_every_users_id_operation_requires_a_users_permission(built: FastAPI) -> None:
    """Another account is reached with a users.* permission; its roles, with
    roles.manage."""
    for (method, path), permissions in declared(built).items():
        if path == "/api/users/{user_id}/roles":
            assert permissions == [P.ROLES_MANAGE], (method, path)
        elif path.startswith("/api/users/{user_id}"):
            assert permissions, (method, path)
            assert all(p.value.startswith("users.") for p in permissions), (method, path)
            if path == "/api/users/{user_id}":
                expected = P.USERS_READ if method == "GET" else P.USERS_WRITE
                assert permissions == [expected], (method, path)


def test_every_roles_operation_requires_roles_manage(built: FastAPI) -> None:
    roles = {op: perms for op, perms in declared(built).items() if op[1].startswith("/api/roles")}
    assert len(roles) == 4
    assert all(perms == [P.ROLES_MANAGE] for perms in roles.values()), roles


def test_the_permission_catalogue_is_public(built: FastAPI) -> None:
    """The same list for everyone, and in the OpenAPI document already (the enum)."""
    assert ("GET", "/api/permissions") not in authenticated(built)


def test_only_granted_permissions_are_declared_by_own_routes(built: FastAPI) -> None:
    """The /me and /api/items routes need only what every signed-in user holds."""
    for (method, path), permissions in declared(built).items():
        if path.startswith(("/api/users/me", "/api/items")):
            assert all(p.value.split(".")[0] in ("profile", "items") for p in permissions)
            assert not any(p.value.endswith("_all") for p in permissions), (method, path)


async def test_the_openapi_document_shows_the_same_authenticated_operations(
    built: FastAPI, client: httpx.AsyncClient
) -> None:
    """What needs a caller is visible from the OpenAPI surface (each such
    operation has a `security` requirement) and is exactly what declares here."""
    schema = (await client.get("/openapi.json")).json()
    secured = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert secured == authenticated(built)
    assert secured == set(DECLARED)
