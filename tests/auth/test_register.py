import httpx
import pytest

from tests.conftest import PASSWORD, bearer, register


async def test_register_answers_201_with_the_user_and_a_token_pair(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": "ada@example.com", "password": PASSWORD, "full_name": "Ada"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert set(body["user"]) == {
        "id",
        "email",
        "full_name",
        "is_active",
        "is_superuser",
        "is_verified",
        "created_at",
    }
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["is_active"] is True
    assert body["user"]["is_superuser"] is False
    assert body["user"]["is_verified"] is False


async def test_registered_tokens_work_immediately(client: httpx.AsyncClient) -> None:
    pair = await register(client)
    me = await client.get("/api/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == pair["user"]["id"]
    refreshed = await client.post(
        "/api/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refreshed.status_code == 200


async def test_register_never_returns_the_password_or_its_hash(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert PASSWORD not in response.text
    assert "$2b$" not in response.text
    assert "password" not in response.json()["user"]


async def test_register_with_a_taken_email_in_any_case_is_409(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await client.post(
        "/api/auth/register", json={"email": "ADA@Example.COM", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this email already exists"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "ada@example.com", "password": "short"}, "password"),
        ({"email": "ada@example.com"}, "password"),
        ({"email": "ada@example.com", "password": PASSWORD, "is_superuser": True}, "is_superuser"),
        ({"email": "ada@example.com", "password": PASSWORD, "is_active": False}, "is_active"),
        ({"email": "ada@example.com", "password": PASSWORD, "id": 7}, "id"),
    ],
)
async def test_register_rejects_invalid_input_with_422_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    response = await client.post("/api/auth/register", json=payload)
    assert response.status_code == 422
    assert field in {error["loc"][-1] for error in response.json()["detail"]}


async def test_a_password_over_72_bytes_is_a_422_that_says_so(client: httpx.AsyncClient) -> None:
    # 37 two-byte characters: 37 characters, 74 bytes.
    response = await client.post(
        "/api/auth/register", json={"email": "ada@example.com", "password": "é" * 37}
    )
    assert response.status_code == 422
    assert "72 bytes" in response.json()["detail"][0]["msg"]


async def test_a_password_of_exactly_72_bytes_is_accepted_and_not_truncated(
    client: httpx.AsyncClient,
) -> None:
    password = "é" * 36  # 72 bytes
    await register(client, password=password)
    ok = await client.post("/api/token/", json={"email": "ada@example.com", "password": password})
    assert ok.status_code == 200
    # A password that differs only in its last byte must not match.
    wrong = await client.post(
        "/api/token/", json={"email": "ada@example.com", "password": "é" * 35 + "e"}
    )
    assert wrong.status_code == 401
