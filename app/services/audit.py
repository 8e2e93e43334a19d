"""The audit trail: every security event, recorded in the transaction of what it
records, and the lists that read it.

`record` adds the event to the caller's database session; the caller's commit
writes both, its rollback neither (no event without its action, no action
without its event). The request's client (address, User-Agent) comes with the
session: `get_db` (app/dependencies.py) attaches it, so services record who was
on the other end without passing it along. A request refused by a rate limit
records nothing: the throttles refuse before any service gets this far.

What goes in `details` is named by the event type (app/schema/audit.py) and is
never a password, token or key: ids, names, prefixes, addresses.
"""

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, exists
from sqlalchemy import select as select_columns  # any number of columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.sessions import Client
from app.database.reads import ReadPool, driver_sql
from app.models import AuditEvent
from app.policy import Viewer
from app.schema.audit import AuditEventOut, AuditFilter, EventFilter, EventPage, EventType

# Where a database session keeps the client of the request it serves.
_CLIENT = "audit.client"


def attach_client(db: AsyncSession, client: Client) -> None:
    """The client whose request this session serves: its events record it."""
    db.info[_CLIENT] = client


def client_of_session(db: AsyncSession) -> Client | None:
    client: Client | None = db.info.get(_CLIENT)
    return client


def record(
    db: AsyncSession,
    event: EventType,
    *,
    actor: Viewer | int | None,
    target: int | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add the event to the session's transaction; the caller commits."""
    client = client_of_session(db)
    db.add(
        AuditEvent(
            type=event.value,
            actor_id=actor.id if isinstance(actor, Viewer) else actor,
            target_id=target,
            client_address=client.address if client else None,
            user_agent=client.user_agent if client else None,
            details=dict(details or {}),
        )
    )


async def signed_in_from_before(
    *, db: AsyncSession, user_id: int, client: Client, since: datetime
) -> bool:
    """Whether the account was registered or signed in from this client (address
    and User-Agent) after `since`: the trail's retention ago, whether or not the
    sweep has deleted the older events yet."""
    seen = select(
        exists().where(
            col(AuditEvent.target_id) == user_id,
            col(AuditEvent.occurred_at) > since,
            col(AuditEvent.type).in_([EventType.REGISTERED, EventType.LOGIN_SUCCEEDED]),
            col(AuditEvent.client_address) == client.address,
            col(AuditEvent.user_agent).is_not_distinct_from(client.user_agent),
        )
    )
    return bool((await db.exec(seen)).one())


# --- The lists --------------------------------------------------------------------

_COLUMNS = (
    col(AuditEvent.id),
    col(AuditEvent.type),
    col(AuditEvent.occurred_at),
    col(AuditEvent.actor_id),
    col(AuditEvent.target_id),
    col(AuditEvent.client_address),
    col(AuditEvent.user_agent),
    col(AuditEvent.details),
)
# Each filter a query string may set, as a condition on its bound value.
_CONDITIONS = {
    "actor": col(AuditEvent.actor_id) == bindparam("actor"),
    "target": col(AuditEvent.target_id) == bindparam("target"),
    "type": col(AuditEvent.type) == bindparam("type"),
    "since": col(AuditEvent.occurred_at) >= bindparam("since"),
    "until": col(AuditEvent.occurred_at) < bindparam("until"),
    "cursor": col(AuditEvent.id) < bindparam("cursor"),
}


@cache
def _list_sql(filters: frozenset[str]) -> str:
    """The statement for this set of filters, compiled once per set: each is an
    index's equality or range, never an `IS NULL OR` the planner cannot use."""
    return driver_sql(
        select_columns(*_COLUMNS)
        .where(*(_CONDITIONS[name] for name in sorted(filters)))
        .order_by(col(AuditEvent.id).desc())
        .limit(bindparam("limit"))
    )


async def _page(*, reader: ReadPool, values: dict[str, Any], limit: int) -> EventPage:
    present = {name: value for name, value in values.items() if value is not None}
    # One row more than the page tells whether another page follows.
    rows = await reader.fetch_all(_list_sql(frozenset(present)), {**present, "limit": limit + 1})
    items = [AuditEventOut.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    return EventPage(items=items, next_cursor=items[-1].id if more else None)


def _values(query: EventFilter) -> dict[str, Any]:
    return {
        "type": query.type.value if query.type else None,
        "since": query.since,
        "until": query.until,
        "cursor": query.cursor,
    }


async def list_events(*, reader: ReadPool, query: AuditFilter) -> EventPage:
    """Any account's events, for an auditor: newest first."""
    values = {**_values(query), "actor": query.actor, "target": query.target}
    return await _page(reader=reader, values=values, limit=query.limit)


async def list_own_events(*, reader: ReadPool, user_id: int, query: EventFilter) -> EventPage:
    """The events of the user's account, newest first. What someone else did to
    it (an administrator) shows who, not from where."""
    page = await _page(
        reader=reader, values={**_values(query), "target": user_id}, limit=query.limit
    )
    page.items = [
        event
        if event.actor_id in (None, user_id)
        else event.model_copy(update={"client_address": None, "user_agent": None})
        for event in page.items
    ]
    return page
