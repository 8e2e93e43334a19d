"""`/api/audit/events`: the security record of every account, for auditors.
A user's own is `GET /api/users/me/events` (app/routes/users.py)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.dependencies import ReaderDep, requires
from app.exceptions import NotAuthenticated, PermissionDenied, error_responses
from app.policy import Permission
from app.schema.audit import AuditFilter, EventPage
from app.services import audit as audit_service

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get(
    "/events",
    response_model=EventPage,
    summary="Read the audit trail",
    responses=error_responses(NotAuthenticated, PermissionDenied),
    dependencies=[Depends(requires(Permission.AUDIT_READ))],
)
async def list_audit_events(reader: ReaderDep, query: Annotated[AuditFilter, Query()]) -> EventPage:
    """Security events of every account, **newest first**: sign-ins that
    succeeded or failed (and why), logouts and ended sessions, refresh tokens
    presented twice, password and email changes, roles granted, withdrawn and
    changed, API keys created and revoked, accounts deactivated and deleted.
    Filter by `actor` (who did it), `target` (whose account), `type` and time;
    follow `next_cursor` for older pages. Never a password, token or key."""
    return await audit_service.list_events(reader=reader, query=query)
