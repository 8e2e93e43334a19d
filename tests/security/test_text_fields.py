"""Property: every string field of every body, and every string query parameter,
survives arbitrary Unicode, NUL bytes and lone surrogates: the answer is the
operation's success (or its documented domain error), or a 422 — never a 500.
Text Postgres cannot store (NUL; a surrogate, which only a JSON escape can
carry) is always a 422 naming the field.

Bodies go out as raw bytes, as an attacker would send them: JSON with `\\udXXX`
escapes, forms and query strings percent-encoded from the text's bytes."""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.services.cursors import MALFORMED as MALFORMED_CURSOR
from tests.conftest import PASSWORD
from tests.security.live_server import Account, LiveServer, openapi_document, serve

EXAMPLES_PER_FIELD = 20
# Any code point, surrogates included, with NUL and lone surrogates drawn often.
TEXT = st.text(
    st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]),
    ),
    max_size=40,
)
SURROGATE = re.compile("[\ud800-\udfff]")

FieldPath = tuple[str | int, ...]
ITEM = {
    "name": "Lamp",
    "description": "Bright",
    "price": "10.50",
    "tax": "1.00",
    "tags": ["desk"],
    "image": {"url": "https://example.com/lamp.png", "name": "Front"},
}


# What a browser's toJSON() of a passkey's registration and sign-in look like.
REGISTRATION = {
    "id": "AAAA",
    "rawId": "AAAA",
    "type": "public-key",
    "authenticatorAttachment": "platform",
    "clientExtensionResults": {},
    "response": {
        "clientDataJSON": "e30",
        "attestationObject": "oA",
        "transports": ["internal"],
    },
}
ASSERTION = {
    "id": "AAAA",
    "rawId": "AAAA",
    "type": "public-key",
    "authenticatorAttachment": "platform",
    "clientExtensionResults": {},
    "response": {
        "clientDataJSON": "e30",
        "authenticatorData": "AAAA",
        "signature": "AAAA",
        "userHandle": "AAAA",
    },
}


def _roles_of_user(_: Account) -> dict[str, Any]:
    return {"roles": ["admin"]}


def _account_changes(caller: Account) -> dict[str, Any]:
    return {"email": f"renamed.{caller.email}", "full_name": "Ada Lovelace"}


def _own_account_changes(caller: Account) -> dict[str, Any]:
    """A new email needs the password: random text there is a 400, then 429."""
    return {**_account_changes(caller), "current_password": PASSWORD}


@dataclass(frozen=True)
class Operation:
    """How to call one operation with a valid input, and what it may answer
    besides 422 (its success and the domain errors random text can cause)."""

    method: str
    path: str
    allowed: frozenset[int]
    body: Callable[[Account], dict[str, Any]] | None = None
    admin: bool = False


OPERATIONS = [
    Operation(
        "POST",
        "/api/auth/register",
        frozenset({201, 409}),
        lambda caller: {"email": f"new.{caller.email}", "password": PASSWORD, "full_name": "Ada"},
    ),
    Operation(
        "POST",
        "/api/token/",
        frozenset({200, 401, 429}),
        lambda caller: {"email": caller.email, "password": PASSWORD},
    ),
    Operation(
        "POST",
        "/api/token/refresh",
        frozenset({401}),
        lambda caller: {"refresh_token": caller.refresh_token},
    ),
    Operation("POST", "/api/token/verify", frozenset({401}), lambda c: {"token": c.access_token}),
    Operation(
        "POST",
        "/api/auth/cookie/login",
        frozenset({200, 401, 429}),
        lambda caller: {"email": caller.email, "password": PASSWORD},
    ),
    Operation(
        "POST",
        "/api/auth/logout",
        frozenset({204, 401}),
        lambda caller: {"refresh_token": caller.refresh_token},
    ),
    Operation(
        "POST",
        "/api/auth/password-recovery",
        frozenset({202, 429}),
        lambda caller: {"email": caller.email},
    ),
    Operation(
        "POST",
        "/api/auth/verify-email/resend",
        frozenset({202, 429}),
        lambda caller: {"email": caller.email},
    ),
    Operation(
        "POST",
        "/api/auth/reset-password",
        frozenset({400}),
        lambda _: {"token": "not-a-mailed-token", "new_password": "another password"},
    ),
    Operation("POST", "/api/auth/verify-email", frozenset({400}), lambda _: {"token": "not-one"}),
    Operation("POST", "/api/auth/secure-account", frozenset({400}), lambda _: {"token": "not-one"}),
    Operation("POST", "/api/items/", frozenset({201}), lambda _: ITEM),
    Operation("PUT", "/api/items/{item_id}", frozenset({200}), lambda _: ITEM),
    Operation("PATCH", "/api/items/{item_id}", frozenset({200}), lambda _: ITEM),
    Operation("PATCH", "/api/users/me", frozenset({200, 400, 409, 429}), _own_account_changes),
    Operation(
        "POST",
        "/api/users/me/password",
        frozenset({204, 400}),
        lambda _: {"current_password": PASSWORD, "new_password": "another password"},
    ),
    Operation("PATCH", "/api/users/{user_id}", frozenset({200, 409}), _account_changes, admin=True),
    Operation(
        "POST",
        "/api/roles",
        frozenset({201, 409}),
        lambda caller: {
            "name": f"role-{caller.id}",
            "description": "Helps",
            "permissions": ["users.read"],
        },
        admin=True,
    ),
    Operation(
        "PUT",
        "/api/roles/{name}",
        frozenset({200}),
        lambda _: {"description": "Helps", "permissions": ["users.read"]},
        admin=True,
    ),
    # A well-formed name of no role: 404.
    Operation(
        "PUT", "/api/users/{user_id}/roles", frozenset({200, 404}), _roles_of_user, admin=True
    ),
    Operation(
        "POST",
        "/api/auth/api-keys",
        frozenset({201}),
        lambda _: {"name": "CI", "scopes": ["items.read"], "expires_at": "2999-01-01T00:00:00Z"},
    ),
    # A forged challenge: 401, then 429 (forged challenges count against the
    # login throttle of the client's address).
    Operation(
        "POST",
        "/api/token/second-factor",
        frozenset({401, 429}),
        lambda _: {"challenge": "not-a-challenge", "code": "123456"},
    ),
    Operation(
        "POST",
        "/api/auth/cookie/second-factor",
        frozenset({401, 429}),
        lambda _: {"challenge": "not-a-challenge", "code": "123456"},
    ),
    # A fresh account has no second factor to confirm, disable or renew: 409.
    Operation("POST", "/api/auth/totp/confirm", frozenset({409}), lambda _: {"code": "123456"}),
    Operation("POST", "/api/auth/totp/disable", frozenset({409}), lambda _: {"code": "123456"}),
    Operation(
        "POST", "/api/auth/totp/recovery-codes", frozenset({409}), lambda _: {"code": "123456"}
    ),
    # A forged ceremony: the registration is refused (400); a sign-in too (401),
    # then 429 (forged ceremonies count against the login throttle of the address).
    Operation(
        "POST",
        "/api/auth/passkeys",
        frozenset({400}),
        lambda _: {"ceremony": "not-a-ceremony", "credential": REGISTRATION, "name": "Phone"},
    ),
    Operation(
        "POST",
        "/api/token/passkey",
        frozenset({401, 429}),
        lambda _: {"ceremony": "not-a-ceremony", "credential": ASSERTION},
    ),
    Operation(
        "POST",
        "/api/auth/cookie/passkey",
        frozenset({401, 429}),
        lambda _: {"ceremony": "not-a-ceremony", "credential": ASSERTION},
    ),
    # A well-formed id of no passkey: 404.
    Operation(
        "PATCH", "/api/auth/passkeys/{passkey_id}", frozenset({404}), lambda _: {"name": "Phone"}
    ),
    # The test server configures no OpenID provider: a valid call finds none.
    Operation("GET", "/api/auth/oidc/{provider}/start", frozenset({404})),
    Operation("GET", "/api/auth/oidc/{provider}/callback", frozenset({404})),
    Operation("GET", "/api/items/", frozenset({200})),
    Operation("GET", "/api/users/", frozenset({200}), admin=True),
    Operation("GET", "/api/users/me/events", frozenset({200})),
    Operation("GET", "/api/audit/events", frozenset({200}), admin=True),
]
BY_KEY = {(operation.method, operation.path): operation for operation in OPERATIONS}


def _string_fields(
    schema: dict[str, Any], components: dict[str, Any], prefix: FieldPath = ()
) -> Iterator[FieldPath]:
    """Every place a string goes in a JSON body schema (array items as index 0)."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    for option in schema.get("anyOf", []):
        yield from _string_fields(option, components, prefix)
    kind = schema.get("type")
    if kind == "string":
        yield prefix
    elif kind == "array":
        yield from _string_fields(schema["items"], components, (*prefix, 0))
    elif kind == "object":
        for name, member in schema.get("properties", {}).items():
            yield from _string_fields(member, components, (*prefix, name))


def _documented_string_inputs() -> set[tuple[str, str, str, FieldPath]]:
    """(method, path, where, field) for every string input the OpenAPI describes."""
    document = openapi_document()
    components = document["components"]["schemas"]
    inputs: set[tuple[str, str, str, FieldPath]] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    for field in _string_fields(parameter["schema"], components):
                        assert field == ()
                        inputs.add((method.upper(), path, "query", (parameter["name"],)))
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                where = "json" if media_type == "application/json" else "form"
                for field in _string_fields(content["schema"], components):
                    inputs.add((method.upper(), path, where, field))
    return inputs


STRING_INPUTS = sorted(_documented_string_inputs(), key=repr)


def test_every_documented_string_input_is_exercised() -> None:
    """A new string field or parameter joins the property below by itself; this
    fails if its operation has no valid call described here yet."""
    assert len(STRING_INPUTS) >= 30
    missing = {(method, path) for method, path, _, _ in STRING_INPUTS} - set(BY_KEY)
    assert not missing


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    with serve(settings) as server:
        yield server
        server.empty_tables()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _with_text(body: dict[str, Any], field: FieldPath, text: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(body))
    target: Any = copy
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = text
    return copy


def _percent_encoded(text: str) -> str:
    """A surrogate goes out as the bytes a lenient encoder would send (CESU-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _call(
    live: LiveServer,
    http: httpx.Client,
    operation: Operation,
    where: str,
    field: FieldPath,
    text: str,
) -> httpx.Response:
    caller = live.register(http, admin=operation.admin)
    path = operation.path
    if "{item_id}" in path:
        item = http.post(f"{live.base_url}/api/items/", json=ITEM, headers=caller.headers)
        path = path.replace("{item_id}", str(item.json()["id"]))
    if "{user_id}" in path:
        path = path.replace("{user_id}", str(live.register(http).id))
    if "{name}" in path:
        role = http.post(
            f"{live.base_url}/api/roles",
            json={"name": f"role-{caller.id}", "permissions": []},
            headers=caller.headers,
        )
        assert role.status_code == 201, role.text
        path = path.replace("{name}", role.json()["name"])
    path = path.replace("{provider}", "unconfigured")
    path = path.replace("{passkey_id}", "5e551075-0000-4000-8000-0000005a55c0")
    url = f"{live.base_url}{path}"
    if where == "query":
        return http.request(
            operation.method, f"{url}?{field[0]}={_percent_encoded(text)}", headers=caller.headers
        )
    if where == "form":
        form = {"username": caller.email, "password": PASSWORD, "grant_type": "password"}
        form[str(field[0])] = text
        encoded = "&".join(f"{name}={_percent_encoded(value)}" for name, value in form.items())
        return http.post(
            url,
            content=encoded.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert operation.body is not None
    body = _with_text(operation.body(caller), field, text)
    return http.request(
        operation.method,
        url,
        content=json.dumps(body, ensure_ascii=True).encode(),
        headers={**caller.headers, "Content-Type": "application/json"},
    )


def _expected_location(where: str, field: FieldPath) -> list[str]:
    if where in ("query", "form"):
        return ["query" if where == "query" else "body", str(field[0])]
    # A list of strings is refused as a whole field, naming it.
    return ["body", *(str(part) for part in field if isinstance(part, str))]


def _unstorable(where: str, text: str) -> bool:
    # Percent-decoding turns a surrogate's bytes into U+FFFD: only NUL gets through.
    return "\x00" in text or (where == "json" and SURROGATE.search(text) is not None)


@pytest.mark.parametrize(
    ("method", "path", "where", "field"),
    STRING_INPUTS,
    ids=lambda value: "/".join(map(str, value)) if isinstance(value, tuple) else str(value),
)
@settings(
    max_examples=EXAMPLES_PER_FIELD,
    derandomize=True,  # the same texts on every run
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=TEXT)
def test_any_text_in_a_string_input_is_accepted_or_a_422(
    live: LiveServer,
    http: httpx.Client,
    method: str,
    path: str,
    where: str,
    field: FieldPath,
    text: str,
) -> None:
    response = _call(live, http, BY_KEY[(method, path)], where, field, text)
    assert response.status_code < 500, response.text
    response.content.decode("utf-8")  # strictly valid UTF-8, surrogates or not
    if (where, field) == ("query", ("cursor",)):
        # An opaque token the API made (a list's `next`), decoded and checked, never
        # stored: text it did not make is the 400 that says so (empty: a 422 naming it).
        assert response.status_code in (400, 422), response.text
        if response.status_code == 400:
            assert response.json() == {"detail": MALFORMED_CURSOR}
        else:
            locations = [error["loc"] for error in response.json()["detail"]]
            assert locations == [["query", "cursor"]]
    elif _unstorable(where, text):
        assert response.status_code == 422, response.text
        locations = [error["loc"] for error in response.json()["detail"]]
        assert _expected_location(where, field) in locations, locations
    else:
        allowed = BY_KEY[(method, path)].allowed | {422}
        assert response.status_code in allowed, response.text
