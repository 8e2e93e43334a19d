"""Keyset cursors: where a list's next page starts, as an opaque token.

A cursor names the last row of a page by its sort key and id, and the list it was
made for by a fingerprint: the list, its sort, its filters and whose rows (the
owner a scope binds). A cursor made for another sort, other filters or another
caller is refused, and so is anything that does not decode to a position of the
sort's type.

It is validated, not signed: forging one only moves the start of a page within
rows the caller may read anyway (every page is still scoped), so a signature would
protect nothing and would break every cursor held when SECRET_KEY rotates.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.exceptions import InvalidCursor
from app.schema.common import MAX_ID, text_problem

VERSION = 1
# Longer than any key a list sorts by (names and emails are at most 320 characters).
MAX_KEY_LENGTH = 1_000
# Beyond any stored number (money is NUMERIC(12,2)), yet within what Postgres parses.
MAX_NUMBER = Decimal(10) ** 20
MALFORMED = "Invalid cursor: pass the `next` of a previous page unchanged"
FOREIGN = (
    "This cursor belongs to another list (another sort, other filters or another "
    "user's items): start again without `cursor`"
)


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in its list's order: its sort key, then its id."""

    key: Any
    id: int


def fingerprint(*, list_name: str, sort: str, values: Mapping[str, Any]) -> str:
    """The list a cursor belongs to: its name, its sort and every bound value (the
    filters and the scope's owner), hashed."""
    canonical = json.dumps(
        [list_name, sort, sorted(values.items())], default=str, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


def encode(position: Position, *, list_fingerprint: str) -> str:
    key = position.key
    wire = key.isoformat() if isinstance(key, datetime) else str(key)
    payload = json.dumps([VERSION, list_fingerprint, wire, position.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(token: str, *, list_fingerprint: str, key_type: type) -> Position:
    """The position a cursor names; InvalidCursor (400) when it is garbled, or was
    made for another list (`list_fingerprint` differs)."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSON errors are ValueErrors
        raise InvalidCursor(MALFORMED) from None
    if not (
        isinstance(payload, list)
        and len(payload) == 4
        and payload[0] == VERSION
        and isinstance(payload[1], str)
        and isinstance(payload[2], str)
        and type(payload[3]) is int
        and 1 <= payload[3] <= MAX_ID
    ):
        raise InvalidCursor(MALFORMED)
    _, made_for, wire, row_id = payload
    if not hmac.compare_digest(made_for.encode(), list_fingerprint.encode()):
        raise InvalidCursor(FOREIGN)
    return Position(key=_key(wire, key_type), id=row_id)


def _key(wire: str, key_type: type) -> Any:
    if len(wire) > MAX_KEY_LENGTH or text_problem(wire):
        raise InvalidCursor(MALFORMED)
    if key_type is str:
        return wire
    try:
        if key_type is Decimal:
            number = Decimal(wire)
            if number.is_finite() and abs(number) < MAX_NUMBER:
                return number
        elif key_type is datetime:
            moment = datetime.fromisoformat(wire)
            if moment.tzinfo is not None:
                return moment
    except (InvalidOperation, ValueError):
        pass
    raise InvalidCursor(MALFORMED)
