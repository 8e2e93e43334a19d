import httpx
import pytest

from tests.conftest import PASSWORD, bearer, register

INVALID = {"detail": "Incorrect email or password"}


async def test_the_oauth2_password_form_logs_in(client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post(
        "/api/token/",
        data={"grant_type": "password", "username": "ada@example.com", "password": PASSWORD},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    me = await client.get("/api/users/me", headers=bearer(body["access_token"]))
    assert me.json()["email"] == "ada@example.com"


async def test_a_json_body_logs_in(client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post(
        "/api/token/", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


async def test_the_email_is_matched_case_insensitively(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await client.post(
        "/api/token/", data={"username": "  ADA@example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 200


async def test_unknown_email_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    wrong_password = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": "wrong password"}
    )
    unknown_email = await client.post(
        "/api/token/", data={"username": "bob@example.com", "password": "wrong password"}
    )
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.json() == INVALID
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_unknown_email_still_pays_for_one_bcrypt_check(
    client: httpx.AsyncClient, bcrypt_checks: list[bytes]
) -> None:
    await register(client)
    await client.post("/api/token/", data={"username": "ada@example.com", "password": "nope-nope"})
    await client.post("/api/token/", data={"username": "bob@example.com", "password": "nope-nope"})
    assert len(bcrypt_checks) == 2
    # Same cost factor for the real hash and the dummy one.
    assert bcrypt_checks[0][:7] == bcrypt_checks[1][:7]


async def test_a_password_over_72_bytes_at_login_is_a_plain_401(client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post(
        "/api/token/", json={"email": "ada@example.com", "password": PASSWORD + "x" * 80}
    )
    assert response.status_code == 401
    assert response.json() == INVALID


async def test_repeated_failures_are_throttled_with_429_and_retry_after(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    for _ in range(5):  # LOGIN_MAX_FAILURES
        failed = await client.post(
            "/api/token/", data={"username": "ada@example.com", "password": "wrong password"}
        )
        assert failed.status_code == 401
    throttled = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert "Too many" in throttled.json()["detail"]


async def test_case_and_spacing_variants_of_one_email_share_one_throttle(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    variants = ["ada@example.com", " ada@example.com", "ADA@example.com ", "  Ada@Example.Com"]
    for variant in [*variants, "ada@example.com\t"]:
        await client.post("/api/token/", data={"username": variant, "password": "x" * 9})
    throttled = await client.post(
        "/api/token/", data={"username": " ada@EXAMPLE.com  ", "password": PASSWORD}
    )
    assert throttled.status_code == 429


async def test_throttling_is_per_email_and_address(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    await register(client, "bob@example.com")
    for _ in range(5):
        await client.post("/api/token/", data={"username": "ada@example.com", "password": "x" * 9})
    other_user = await client.post(
        "/api/token/", data={"username": "bob@example.com", "password": PASSWORD}
    )
    assert other_user.status_code == 200


async def test_a_known_devices_successful_login_clears_its_earlier_failures(
    client: httpx.AsyncClient,
) -> None:
    await register(client)  # sets the device cookie the client sends from now on
    for _ in range(4):
        await client.post("/api/token/", data={"username": "ada@example.com", "password": "x" * 9})
    ok = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert ok.status_code == 200
    for _ in range(4):
        again = await client.post(
            "/api/token/", data={"username": "ada@example.com", "password": "x" * 9}
        )
        assert again.status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "location"),
    [
        ({"content": b"username=a&password=b", "headers": {"Content-Type": "text/plain"}}, "body"),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ({"json": {"email": "ada@example.com"}}, "password"),
        ({"data": {"username": "ada@example.com"}}, "password"),
        (
            {"data": {"grant_type": "client_credentials", "username": "a", "password": "b"}},
            "grant_type",
        ),
    ],
)
async def test_malformed_login_requests_are_422(
    client: httpx.AsyncClient, kwargs: dict[str, object], location: str
) -> None:
    response = await client.post("/api/token/", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 422
    assert location in response.json()["detail"][0]["loc"]


async def test_an_inactive_user_cannot_log_in(
    client: httpx.AsyncClient, admin_tokens: dict[str, str]
) -> None:
    pair = await register(client)
    deactivated = await client.patch(
        f"/api/users/{pair['user']['id']}",
        json={"is_active": False},
        headers=bearer(admin_tokens["access_token"]),
    )
    assert deactivated.status_code == 200
    response = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.json() == INVALID
