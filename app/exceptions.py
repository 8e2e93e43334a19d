"""The domain's exceptions, and their mapping onto HTTP responses.

Services raise these; only this module knows about status codes.
"""

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.schema.common import ErrorDetail


class DomainError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    detail = "Bad request"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail

    def headers(self) -> dict[str, str] | None:
        return None


class NotAuthenticated(DomainError):
    """Any failure to prove who the caller is: one body, one header, no hints."""

    status_code = status.HTTP_401_UNAUTHORIZED
    detail = "Could not validate credentials"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class InvalidCredentials(NotAuthenticated):
    detail = "Incorrect email or password"


class PermissionDenied(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    detail = "Not enough privileges"


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    detail = "Not found"


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    detail = "Conflict"


class EmailTaken(Conflict):
    detail = "A user with this email already exists"


class WrongPassword(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    detail = "The current password is incorrect"


class TooManyAttempts(DomainError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    detail = "Too many failed login attempts; try again later"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__()
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ServiceUnavailable(DomainError):
    """Overloaded or a dependency is down: the client should retry shortly."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    detail = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int = 5) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


# Infrastructure failures a request can meet, answered 503 rather than 500:
# the pool had no free connection in time, or the database did not answer.
DATABASE_BUSY = "Database busy; retry shortly"
DATABASE_UNAVAILABLE = "Database unavailable; retry shortly"


async def _domain_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers()
    )


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or Infinity: a body that sent them gets them back as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _validation_error_response(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but never a 500 when the offending input is NaN or Infinity."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": _json_safe(jsonable_encoder(exc.errors()))},
    )


async def _database_error_response(request: Request, exc: Exception) -> JSONResponse:
    """No connection in time, or a connection that failed: a 503 the client may
    retry. Never a success: a write whose COMMIT did not come back is not reported
    as done."""
    if isinstance(exc, PoolTimeout):
        error = ServiceUnavailable(DATABASE_BUSY, retry_after_seconds=1)
    else:
        error = ServiceUnavailable(DATABASE_UNAVAILABLE)
    return await _domain_error_response(request, error)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error_response)
    for database_error in (PoolTimeout, OperationalError, InterfaceError):
        app.add_exception_handler(database_error, _database_error_response)
    app.add_exception_handler(RequestValidationError, _validation_error_response)


def error_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` entries documenting the errors a route can return."""
    return {
        error.status_code: {
            "model": ErrorDetail,
            "description": error.detail,
            "content": {"application/json": {"example": {"detail": error.detail}}},
        }
        for error in errors
    }
