"""Liveness and readiness, for Docker's healthcheck and load balancers."""

from fastapi import APIRouter, Request

from app.database.db import database_answers
from app.exceptions import ServiceUnavailable, error_responses

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("", summary="Liveness")
async def alive() -> dict[str, str]:
    """`200` while the process lives; touches nothing else."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness", responses=error_responses(ServiceUnavailable))
async def ready(request: Request) -> dict[str, str]:
    """`200` when the database answers, `503` when it does not."""
    if not await database_answers(request.app.state.engine):
        raise ServiceUnavailable("Database unavailable")
    return {"status": "ok"}
