"""`GET` and `DELETE /api/users/{id}/sessions`: an admin sees a user's live
sessions and ends them all, without deactivating the account."""

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import assert_session_ended, bearer, login, me, register


async def user_sessions(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: int
) -> httpx.Response:
    return await client.get(f"/api/users/{user_id}/sessions", headers=bearer(admin["access_token"]))


async def end_user_sessions(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: int
) -> httpx.Response:
    return await client.delete(
        f"/api/users/{user_id}/sessions", headers=bearer(admin["access_token"])
    )


async def session_epoch(app: FastAPI, user_id: int) -> int:
    async with app.state.engine.connect() as connection:
        epoch: int = await connection.scalar(
            text("SELECT session_epoch FROM users WHERE id = :id"), {"id": user_id}
        )
    return epoch


async def test_an_admin_lists_a_users_live_sessions_as_the_user_sees_them(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    second = await login(client)
    await client.post("/api/auth/logout", json={"refresh_token": second["refresh_token"]})
    third = await login(client)
    user_id = user_tokens["user"]["id"]

    response = await user_sessions(client, admin_tokens, user_id)

    assert response.status_code == 200
    as_user = await client.get("/api/auth/sessions", headers=bearer(third["access_token"]))
    # The same sessions, newest first; none is the admin's, so none is current.
    expected = [{**session, "current": False} for session in as_user.json()]
    assert response.json() == expected
    assert len(expected) == 2


async def test_an_admin_listing_their_own_sessions_sees_the_current_one(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    admin_id = (await me(client, admin_tokens["access_token"])).json()["id"]
    await login(client, "root@example.com")
    response = await user_sessions(client, admin_tokens, admin_id)
    assert [session["current"] for session in response.json()] == [False, True]


async def test_ending_a_users_sessions_ends_every_token_but_not_the_account(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_tokens: dict[str, Any],
    user_tokens: dict[str, Any],
) -> None:
    phone = await login(client)
    user_id = user_tokens["user"]["id"]
    epoch = await session_epoch(app, user_id)

    response = await end_user_sessions(client, admin_tokens, user_id)

    assert response.status_code == 204
    assert response.content == b""
    for pair in (user_tokens, phone):
        await assert_session_ended(client, pair)
    assert (await user_sessions(client, admin_tokens, user_id)).json() == []
    # Through end_all_sessions: a login in flight is refused too
    # (tests/security/test_revocation_races.py).
    assert await session_epoch(app, user_id) == epoch + 1
    # The account is still active: the user logs in again.
    again = await login(client)
    assert (await me(client, again["access_token"])).json()["is_active"] is True
    # And the admin's own session is untouched.
    assert (await me(client, admin_tokens["access_token"])).status_code == 200


async def test_ending_one_users_sessions_leaves_the_others(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any], user_tokens: dict[str, Any]
) -> None:
    grace = await register(client, "grace@example.com")
    await end_user_sessions(client, admin_tokens, user_tokens["user"]["id"])
    assert (await me(client, grace["access_token"])).status_code == 200


async def test_an_unknown_user_is_a_404_for_both(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    for response in (
        await user_sessions(client, admin_tokens, 2_000_000_000),
        await end_user_sessions(client, admin_tokens, 2_000_000_000),
    ):
        assert (response.status_code, response.json()) == (404, {"detail": "User not found"})


async def test_a_user_id_outside_the_integer_column_is_a_422(
    client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    for user_id in (0, 2**31):
        response = await user_sessions(client, admin_tokens, user_id)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


async def test_a_user_cannot_list_or_end_their_own_sessions_through_the_admin_route(
    client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    user_id = user_tokens["user"]["id"]
    for response in (
        await user_sessions(client, user_tokens, user_id),
        await end_user_sessions(client, user_tokens, user_id),
    ):
        assert (response.status_code, response.json()) == (
            403,
            {"detail": "Not enough privileges"},
        )
    assert (await me(client, user_tokens["access_token"])).status_code == 200
