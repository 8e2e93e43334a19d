"""What the audit tests share: reading the trail as an auditor does."""

from typing import Any

import httpx

from tests.conftest import bearer

EVENTS = "/api/audit/events"
MY_EVENTS = "/api/users/me/events"


async def event_page(
    client: httpx.AsyncClient, token: str, path: str = EVENTS, **filters: Any
) -> dict[str, Any]:
    response = await client.get(path, params=filters, headers=bearer(token))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def events(
    client: httpx.AsyncClient, token: str, path: str = EVENTS, **filters: Any
) -> list[dict[str, Any]]:
    """Every event the filters match (all pages), newest first."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await event_page(
            client, token, path, limit=100, **filters, **({"cursor": cursor} if cursor else {})
        )
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def the_event(client: httpx.AsyncClient, token: str, type: str) -> dict[str, Any]:
    """The one event of this type there is."""
    found = await events(client, token, type=type)
    assert len(found) == 1, found
    return found[0]


async def raw_trail(client: httpx.AsyncClient, token: str) -> str:
    """The whole trail as the API sends it: to search for what must never be in it."""
    return repr(await events(client, token))
