"""Liveness and readiness, for Docker's healthcheck and load balancers."""

from fastapi import APIRouter

from app.dependencies import EngineDep
from app.exceptions import ServiceUnavailable, error_responses
from app.services import health as health_service

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("", summary="Liveness")
async def alive() -> dict[str, str]:
    """`200` while the process lives; touches nothing else."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness", responses=error_responses(ServiceUnavailable))
async def ready(engine: EngineDep) -> dict[str, str]:
    """`200` when the database answers, `503` when it does not."""
    await health_service.check_ready(engine=engine)
    return {"status": "ok"}
