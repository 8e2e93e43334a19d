"""`GET /api/auth/sessions` and `DELETE /api/auth/sessions/{id}`: the caller's live
sessions, what each recorded of its client, and ending one at once."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.auth.sessions import Client
from app.config import Settings
from tests.conftest import (
    ATTACKER_ADDRESS,
    CLIENT_ADDRESS,
    PASSWORD,
    assert_session_ended,
    bearer,
    client_at,
    me,
    register,
)

LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
PHONE = "ExampleApp/2.1 (Android 15)"
PHONE_ADDRESS = "198.51.100.23"
MISSING_SESSION = "00000000-0000-4000-8000-000000000000"


async def login_as(http: httpx.AsyncClient, user_agent: str | bytes | None) -> dict[str, Any]:
    """Log in as ada with this User-Agent (bytes: sent as they are; None: none)."""
    if isinstance(user_agent, str):
        user_agent = user_agent.encode("latin-1")
    headers = {b"User-Agent": user_agent} if user_agent is not None else {}
    response = await http.post(
        "/api/token/",
        data={"username": "ada@example.com", "password": PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sessions_of(http: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await http.get("/api/auth/sessions", headers=bearer(token))
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


async def current_session_id(http: httpx.AsyncClient, token: str) -> str:
    [current] = [s for s in await sessions_of(http, token) if s["current"]]
    session_id: str = current["id"]
    return session_id


async def end(http: httpx.AsyncClient, token: str, session_id: str) -> httpx.Response:
    return await http.delete(f"/api/auth/sessions/{session_id}", headers=bearer(token))


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_the_list_shows_each_live_session_newest_first_with_its_client(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client.headers["User-Agent"] = LAPTOP
    laptop = await register(client)
    async with client_at(app, PHONE_ADDRESS) as phone_http:
        phone = await login_as(phone_http, PHONE)
    listed = await sessions_of(client, phone["access_token"])

    assert [s["user_agent"] for s in listed] == [PHONE, LAPTOP]  # newest first
    newest, oldest = listed
    assert (newest["client_address"], oldest["client_address"]) == (PHONE_ADDRESS, CLIENT_ADDRESS)
    assert (newest["current"], oldest["current"]) == (True, False)
    for session in listed:
        # Never refreshed: the last client is the login's, last used at the login.
        assert session["last_user_agent"] == session["user_agent"]
        assert session["last_client_address"] == session["client_address"]
        assert session["last_used_at"] == session["created_at"]
        assert at(session["expires_at"]) - at(session["created_at"]) == settings.REFRESH_TOKEN_TTL
        assert set(session) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "user_agent",
            "client_address",
            "last_user_agent",
            "last_client_address",
            "current",
        }
    # The laptop's own token marks the laptop's session as current.
    from_laptop = await sessions_of(client, laptop["access_token"])
    assert [s["current"] for s in from_laptop] == [False, True]


async def test_a_refresh_records_its_client_and_renews_the_session(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client.headers["User-Agent"] = LAPTOP
    laptop = await register(client)
    [before] = await sessions_of(client, laptop["access_token"])
    async with client_at(app, PHONE_ADDRESS) as elsewhere:
        refreshed = await elsewhere.post(
            "/api/token/refresh",
            json={"refresh_token": laptop["refresh_token"]},
            headers={"User-Agent": PHONE},
        )
    assert refreshed.status_code == 200, refreshed.text
    [after] = await sessions_of(client, refreshed.json()["access_token"])

    assert after["id"] == before["id"]
    # The login's client stays; the last one is the refresh's.
    assert (after["user_agent"], after["client_address"]) == (LAPTOP, CLIENT_ADDRESS)
    assert (after["last_user_agent"], after["last_client_address"]) == (PHONE, PHONE_ADDRESS)
    assert after["created_at"] == before["created_at"]
    assert at(after["last_used_at"]) > at(before["last_used_at"])
    # Alive until the new refresh token expires: a session in use does not end.
    assert at(after["expires_at"]) - at(after["last_used_at"]) == settings.REFRESH_TOKEN_TTL
    assert at(after["expires_at"]) > at(before["expires_at"])


async def test_ended_and_expired_sessions_are_not_listed(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    logged_out = await login_as(client, "logged out")
    expired = await login_as(client, "expired")
    await client.post("/api/auth/logout", json={"refresh_token": logged_out["refresh_token"]})
    expired_id = await current_session_id(client, expired["access_token"])
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE auth_sessions SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": expired_id},
        )
    listed = await sessions_of(client, user_tokens["access_token"])
    assert [s["current"] for s in listed] == [True]


async def test_ending_a_session_ends_its_tokens_at_once_and_no_other(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    own_id = await current_session_id(client, user_tokens["access_token"])
    phone = await login_as(client, PHONE)
    phone_id = await current_session_id(client, phone["access_token"])

    response = await end(client, user_tokens["access_token"], phone_id)

    assert response.status_code == 204
    assert response.content == b""
    await assert_session_ended(client, phone)
    assert (await me(client, user_tokens["access_token"])).status_code == 200
    listed = await sessions_of(client, user_tokens["access_token"])
    assert [s["id"] for s in listed] == [own_id]


async def test_ending_the_current_session_is_a_logout(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    own_id = await current_session_id(client, user_tokens["access_token"])
    response = await end(client, user_tokens["access_token"], own_id)
    assert response.status_code == 204
    await assert_session_ended(client, user_tokens)


async def test_an_ended_session_cannot_be_ended_again(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    phone = await login_as(client, PHONE)
    phone_id = await current_session_id(client, phone["access_token"])
    assert (await end(client, user_tokens["access_token"], phone_id)).status_code == 204
    again = await end(client, user_tokens["access_token"], phone_id)
    assert (again.status_code, again.json()) == (404, {"detail": "Session not found"})


async def test_another_users_session_is_a_404_like_a_missing_one_and_lives_on(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    victim_id = await current_session_id(client, user_tokens["access_token"])
    mallory = await register(attacker, "mallory@example.com")

    stolen = await end(attacker, mallory["access_token"], victim_id)
    missing = await end(attacker, mallory["access_token"], MISSING_SESSION)

    assert (stolen.status_code, stolen.json()) == (404, {"detail": "Session not found"})
    assert (stolen.status_code, stolen.json()) == (missing.status_code, missing.json())
    assert (await me(client, user_tokens["access_token"])).status_code == 200
    assert victim_id in [s["id"] for s in await sessions_of(client, user_tokens["access_token"])]
    assert victim_id not in [s["id"] for s in await sessions_of(attacker, mallory["access_token"])]


@pytest.mark.parametrize(
    "session_id", ["not-a-uuid", "1", "00000000-0000-4000-8000", "%00", "' OR 1=1 --"]
)
async def test_a_malformed_session_id_is_a_422_naming_it(
    client: httpx.AsyncClient, user_tokens: dict[str, Any], session_id: str
) -> None:
    response = await end(client, user_tokens["access_token"], session_id)
    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [["path", "session_id"]]


async def test_the_sessions_routes_need_a_bearer(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/auth/sessions"),
        await client.delete(f"/api/auth/sessions/{uuid.uuid4()}"),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_long_user_agent_is_cut_and_a_missing_one_is_null(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    long_agent = "A" * 600 + "B" * 2000
    await login_as(client, long_agent)
    client.headers.pop("User-Agent")
    await login_as(client, None)
    agents = [s["user_agent"] for s in await sessions_of(client, user_tokens["access_token"])]
    assert agents[:2] == [None, "A" * 512]


async def test_a_user_agent_with_nul_and_latin_1_bytes_is_stored_without_the_nul(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """Header values are bytes: a NUL is dropped (Postgres text cannot hold it), any
    other byte is kept as the Latin-1 character HTTP defines it to be."""
    await login_as(client, b"Evil\x00Agent\xe9\xff")
    [newest, _] = await sessions_of(client, user_tokens["access_token"])
    assert newest["user_agent"] == "EvilAgent\u00e9\u00ff"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("Browser\x00/1.0", "Browser/1.0"),
        ("\x00", None),
        ("", None),
        (None, None),
        ("x" * 513, "x" * 512),
        ("\x00" + "y" * 600, "y" * 512),  # NUL removed before cutting
        ("Navigateur/1.0 (é)", "Navigateur/1.0 (é)"),
    ],
)
def test_a_user_agent_is_stored_bounded_and_without_nul(
    sent: str | None, stored: str | None
) -> None:
    assert Client.seen(address=CLIENT_ADDRESS, user_agent=sent).user_agent == stored


def test_an_address_is_bounded_like_its_column() -> None:
    assert Client.seen(address="a" * 100, user_agent=None).address == "a" * 64


async def test_a_session_opened_before_clients_were_recorded_is_listed_with_nulls(
    app: FastAPI, client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """Rows from before migration 0003 have no client: listed with nulls, not a 500."""
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE auth_sessions SET user_agent = NULL, client_address = NULL,"
                " last_user_agent = NULL, last_client_address = NULL"
            )
        )
    [session] = await sessions_of(client, user_tokens["access_token"])
    assert (session["user_agent"], session["client_address"]) == (None, None)
    assert session["current"] is True


async def test_an_attackers_list_never_shows_the_victims_sessions(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    await login_as(client, "Victim's phone")
    mallory = await register(attacker, "mallory@example.com")
    listed = await sessions_of(attacker, mallory["access_token"])
    assert [s["client_address"] for s in listed] == [ATTACKER_ADDRESS]
    assert "Victim" not in str(listed)
