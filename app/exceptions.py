"""The domain's exceptions, and their mapping onto HTTP responses.

Services raise these; only this module knows about status codes.
"""

import math
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.observability import metrics


class ErrorDetail(BaseModel):
    """The body of every error but a 422."""

    detail: str = Field(examples=["Not found"])


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
    # Why, for the audit trail, when the proof that raised it knows better than
    # its `refusal` (app/auth/proofs.py); None: the proof's `refusal` says.
    reason: str | None = None


class InvalidSecondStep(InvalidCredentials):
    """A login's second step refused: a wrong code, one already used, or a
    challenge that is forged, spent, expired, out of guesses or voided."""

    detail = "Incorrect code, or the challenge is no longer valid (then log in again)"


class OidcRefused(InvalidCredentials):
    """A sign-in with an OpenID provider refused: no flow cookie or another
    browser's, a forged state, a code the provider refused, an ID token that
    fails its checks, or no verified address (the audit trail keeps which)."""

    detail = (
        "The sign-in with the OpenID provider was refused (it asserted no verified "
        "email, or this browser did not start it, or it expired): start again"
    )


class PasskeyRefused(InvalidCredentials):
    """A sign-in with a passkey refused; the detail says why (the ceremony, the
    passkey, or which check of the browser's answer failed). The ceremony is
    spent either way: start again with new options."""

    detail = (
        "The passkey sign-in was refused: ask for new options "
        "(POST /api/auth/passkeys/login/options) and try again"
    )

    def __init__(self, detail: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(
            f"The passkey sign-in was refused: {detail}; ask for new options "
            "(POST /api/auth/passkeys/login/options) and try again"
            if detail
            else None
        )
        self.reason = reason


class PermissionDenied(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    detail = "Not enough privileges"


class ApiKeyRefused(PermissionDenied):
    """A request sent with an API key that the key may not make: outside its
    scopes (or its owner's permissions), or for a signed-in session only."""

    detail = "Not allowed with this API key: outside its scopes, or only a signed-in session may"


class CsrfRejected(DomainError):
    """A request authenticated by the access cookie that does not prove it comes
    from the app's own pages (app/auth/csrf.py); nothing was done."""

    status_code = status.HTTP_403_FORBIDDEN
    detail = "CSRF token missing or invalid"


class CsrfTokenMissing(CsrfRejected):
    detail = (
        "CSRF token missing: a request authenticated by cookie must send the "
        "X-CSRF-Token header holding the __Host-csrf cookie's value"
    )


class CsrfTokenInvalid(CsrfRejected):
    detail = (
        "CSRF token invalid: the X-CSRF-Token header must equal the __Host-csrf "
        "cookie, issued for this session"
    )


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    detail = "Not found"


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    detail = "Conflict"


class EmailTaken(Conflict):
    detail = "A user with this email already exists"


class PasskeyRegistrationRefused(DomainError):
    """A passkey registration refused: its ceremony cannot be used, or a check of
    the browser's answer failed (the detail says which), or the passkey is
    registered already."""

    status_code = status.HTTP_400_BAD_REQUEST
    detail = (
        "The passkey was not registered: ask for new options "
        "(POST /api/auth/passkeys/register/options) and try again"
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            f"The passkey was not registered: {detail}; ask for new options "
            "(POST /api/auth/passkeys/register/options) and try again"
            if detail
            else None
        )


class PasskeyTaken(Conflict):
    detail = "This passkey is registered already (to this account or another)"


class LastSignInMethod(Conflict):
    detail = (
        "This is the account's last way to sign in: set a password first "
        "(password recovery mails a link), then unlink"
    )


class RoleNotFound(NotFound):
    detail = "Role not found"


class RoleNameTaken(Conflict):
    detail = "A role with this name already exists"


class BuiltinRole(Conflict):
    detail = "The built-in admin role cannot be changed or deleted"


class LastRoleManager(Conflict):
    """The change would leave no active account holding roles.manage: nobody could
    grant a role again."""

    detail = "The last active holder of roles.manage cannot lose it"


class WrongPassword(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    detail = "The current password is incorrect"


class WrongSecondFactorCode(DomainError):
    """A code that does not confirm, disable or renew the second factor: not a
    current code of the authenticator (or one already used), nor an unused
    recovery code."""

    status_code = status.HTTP_400_BAD_REQUEST
    detail = (
        "The code is not valid: give a current code of your authenticator app, "
        "or an unused recovery code"
    )


class SecondFactorEnabled(Conflict):
    detail = "A second factor is already enabled: disable it first"


class NoSecondFactor(Conflict):
    """Confirming with no setup pending, or disabling or renewing codes with no
    second factor enabled."""

    detail = "No second factor is enabled (or pending setup): start with POST /api/auth/totp/setup"


class PasswordRequired(DomainError):
    """An email change asked without the current password."""

    status_code = status.HTTP_400_BAD_REQUEST
    detail = "Changing the email needs the account's password: send it as current_password"


class TooManyAttempts(DomainError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    detail = "Too many failed login attempts; try again later"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__()
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class TooManyCodeGuesses(TooManyAttempts):
    """Wrong second-factor codes sent by a signed-in session (to confirm, disable
    or renew it), past the limit."""

    detail = "Too many wrong codes; try again later"


class TooManyMailRequests(TooManyAttempts):
    """Password recovery or a verification resend, asked too often for one
    address or from one client (known and unknown addresses alike)."""

    detail = "Too many mail requests for this address or from this client; try again later"


class InvalidLink(DomainError):
    """A mailed token (password reset, verification, email change, undo) that
    cannot be used; the detail says why (forged or of another purpose, spent,
    replaced, expired, sent to an address the account no longer has)."""

    status_code = status.HTTP_400_BAD_REQUEST
    detail = "This link is not valid: request a new one"


class EmailNotVerified(DomainError):
    """LOGIN_REQUIRES_VERIFIED_EMAIL: the password was right, the address unproven."""

    status_code = status.HTTP_403_FORBIDDEN
    detail = (
        "Email address not verified: follow the link mailed to you, or ask for a new one "
        "with POST /api/auth/verify-email/resend"
    )


class ServiceUnavailable(DomainError):
    """Overloaded or a dependency is down: the client should retry shortly."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    detail = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int = 5) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class OidcProviderFailed(DomainError):
    """An OpenID provider unreachable, or whose discovery document the app must
    refuse (another issuer, a plain-http endpoint): nothing is signed in."""

    status_code = status.HTTP_502_BAD_GATEWAY
    detail = "The OpenID provider is unavailable or misconfigured"


class MalformedBody(DomainError):
    """FastAPI's own answer to a body it cannot decode (not UTF-8, nested too deep);
    raised by FastAPI, named here to be documented."""

    status_code = status.HTTP_400_BAD_REQUEST
    detail = "There was an error parsing the body"


class PayloadTooLarge(DomainError):
    status_code = status.HTTP_413_CONTENT_TOO_LARGE
    detail = "Request body too large"


# Infrastructure failures a request can meet, answered 503 rather than 500:
# the pool had no free connection in time, or the database did not answer.
DATABASE_BUSY = "Database busy; retry shortly"
DATABASE_UNAVAILABLE = "Database unavailable; retry shortly"


async def _domain_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers()
    )


# A 422 says where and why, and echoes a short scalar input to help the caller;
# never a secret, a whole body or object (it may hold a password), nor megabytes.
SECRET_FIELDS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "refresh_token",
        "token",
        "access_token",
        "code",
        "challenge",
        "ceremony",
    }
)
MAX_ECHOED_CHARACTERS = 100
MAX_ECHOED_INTEGER = 2**63
_WITHHELD = object()


def _echoable_text(text: str, limit: int = MAX_ECHOED_CHARACTERS) -> str:
    """Short, and encodable: a lone surrogate comes back escaped (`\\ud800`)."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _echoable(value: Any) -> Any:
    """The value as it may appear in a 422, or _WITHHELD when it must not."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < MAX_ECHOED_INTEGER else _WITHHELD
    if isinstance(value, float):
        # JSON has no NaN or Infinity: a body that sent them gets them back as text.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _echoable_text(value)
    return _WITHHELD


def _context_value(value: Any) -> Any:
    """`ctx` holds the rule that failed (a bound, an exception): shown as text."""
    shown = _echoable(value)
    return _echoable_text(str(value)) if shown is _WITHHELD else shown


def _public_error(error: dict[str, Any]) -> dict[str, Any]:
    location = [
        part if isinstance(part, int) else _echoable_text(str(part)) for part in error["loc"]
    ]
    public: dict[str, Any] = {
        "type": error["type"],
        "loc": location,
        "msg": _echoable_text(str(error["msg"]), limit=1000),
    }
    if "input" in error and not SECRET_FIELDS.intersection(map(str, error["loc"])):
        shown = _echoable(error["input"])
        if shown is not _WITHHELD:
            public["input"] = shown
    if error.get("ctx"):
        public["ctx"] = {str(key): _context_value(value) for key, value in error["ctx"].items()}
    return public


async def _validation_error_response(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, safe to encode whatever the input was, and without echoing it
    when it is a secret or too big."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [_public_error(error) for error in exc.errors()]},
    )


async def _database_error_response(request: Request, exc: Exception) -> JSONResponse:
    """No connection in time, or a connection that failed: a 503 the client may
    retry. Never a success: a write whose COMMIT did not come back is not reported
    as done."""
    if isinstance(exc, PoolTimeout):  # the read pool counts its own (app/database/reads.py)
        metrics.POOL_TIMEOUTS.labels("transactions").inc()
    if isinstance(exc, PoolTimeout | psycopg_pool.PoolTimeout):
        error = ServiceUnavailable(DATABASE_BUSY, retry_after_seconds=1)
    else:
        error = ServiceUnavailable(DATABASE_UNAVAILABLE)
    return await _domain_error_response(request, error)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error_response)
    # SQLAlchemy's (transactions) and psycopg's own (the read pool).
    database_errors = (PoolTimeout, OperationalError, InterfaceError)
    read_errors = (psycopg_pool.PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError)
    for database_error in database_errors + read_errors:
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
