"""One error type for the whole service, and the one place it becomes HTTP.

Services raise DomainError subclasses (they never import FastAPI); the handlers
registered by ``install_error_handlers`` render every 4xx/5xx as JSON
``{detail, code}``. Validation errors keep FastAPI's 422 shape.
"""

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from app.timeutil import iso_z

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A failure the client can act on: HTTP status, stable ``code``, human ``detail``."""

    # Per class; only HttpError sets them per instance (it carries Starlette's status).
    status_code: int = 400
    code: str = "bad_request"
    default_detail: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers
        self.extra = extra or {}
        super().__init__(self.detail)


class NotAuthenticated(DomainError):
    status_code, code, default_detail = 401, "not_authenticated", "Not authenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidToken(DomainError):
    status_code, code, default_detail = 401, "invalid_token", "Invalid or expired token"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(DomainError):
    status_code, code, default_detail = 401, "invalid_credentials", "Wrong student ID or password"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status_code, code, default_detail = 403, "forbidden", "Your role does not allow this"


class CsrfFailed(DomainError):
    """A write authenticated by the session cookie alone, without the matching
    ``X-CSRF-Token`` header (api.md, Browser sessions)."""

    status_code, code = 403, "csrf_failed"
    default_detail = "Missing or wrong X-CSRF-Token header (it must equal the dlsms_csrf cookie)"


class Suspended(DomainError):
    status_code, code, default_detail = (
        403,
        "suspended",
        "Booking is suspended after repeated no-shows",
    )

    def __init__(self, suspended_until: datetime) -> None:
        super().__init__(
            f"Booking is suspended until {iso_z(suspended_until)} after repeated no-shows",
            extra={"suspended_until": suspended_until},
        )


class NotFound(DomainError):
    status_code, code, default_detail = 404, "not_found", "Not found"


class AlreadyExists(DomainError):
    status_code, code, default_detail = 409, "already_exists", "Already exists"


class SeatConflict(DomainError):
    status_code, code = 409, "seat_conflict"
    default_detail = "The seat is already booked for an overlapping interval"


class UserOverlap(DomainError):
    status_code, code = 409, "user_overlap"
    default_detail = "You already hold a reservation overlapping this interval"


class SeatUnavailable(DomainError):
    status_code, code, default_detail = 409, "seat_unavailable", "The seat is not open for booking"


class InvalidState(DomainError):
    status_code, code, default_detail = 409, "invalid_state", "Not allowed in the current state"


class CheckinWindow(DomainError):
    status_code, code, default_detail = 409, "checkin_window", "Check-in is not open now"


class OfferExpired(DomainError):
    status_code, code, default_detail = 409, "offer_expired", "The waitlist offer has expired"


class SlotAvailable(DomainError):
    status_code, code = 409, "slot_available"
    default_detail = "A seat is free for the whole interval: book it instead"


class IdempotencyInProgress(DomainError):
    status_code, code = 409, "idempotency_in_progress"
    default_detail = "A request with this Idempotency-Key is still being processed"


class PayloadTooLarge(DomainError):
    status_code, code = 413, "payload_too_large"
    default_detail = "Request body too large"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class CorsRefused(DomainError):
    status_code, code, default_detail = 400, "cors_refused", "Disallowed CORS request"


class InvalidInterval(DomainError):
    status_code, code, default_detail = 422, "invalid_interval", "Invalid time interval"


class OutsideOpeningHours(DomainError):
    """A booking, waitlist entry, offer or extension not inside one opening of its
    branch; the detail names that day's openings in local time (app/services/rules.py)."""

    status_code, code = 422, "outside_opening_hours"
    default_detail = "The branch is not open for the whole interval"


class QuotaExceeded(DomainError):
    """Over a branch quota: ``quota`` is the policy field, ``used`` what was used before
    the refused request (app/services/quotas.py)."""

    status_code, code, default_detail = 409, "quota_exceeded", "Over the branch's quota"

    def __init__(self, detail: str, *, quota: str, limit: float, used: float) -> None:
        super().__init__(detail, extra={"quota": quota, "limit": limit, "used": used})


class IdempotencyMismatch(DomainError):
    status_code, code = 422, "idempotency_mismatch"
    default_detail = "This Idempotency-Key was used with a different request body"


class RateLimited(DomainError):
    status_code, code, default_detail = 429, "rate_limited", "Too many attempts, try again later"

    def __init__(
        self,
        retry_after_seconds: int,
        *,
        what: str = "attempts",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            f"Too many {what}, try again in {retry_after_seconds} s",
            headers={**(headers or {}), "Retry-After": str(retry_after_seconds)},
        )


class ServiceUnavailable(DomainError):
    status_code, code = 503, "service_unavailable"
    default_detail = "The service is unavailable, try again shortly"


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached right now (raised where a connection is taken:
    app/db/pool.py)."""

    default_detail = "The database is unavailable, try again shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class HttpError(DomainError):
    """Starlette's own refusals (unknown route, wrong method, ...) in our shape."""

    status_code, code, default_detail = 400, "http_error", "Request failed"
    _CODES: ClassVar[dict[int, str]] = {
        401: "not_authenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }

    def __init__(
        self,
        status_code: int = 400,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, headers=headers)
        self.status_code = status_code
        self.code = self._CODES.get(status_code, "http_error")


class InternalError(DomainError):
    """Anything unexpected: the answer names the request id and nothing internal."""

    status_code, code, default_detail = 500, "internal_error", "Internal server error"

    def __init__(self, request_id: str) -> None:
        super().__init__(extra={"request_id": request_id})


# Constraint name -> error. Constraints are named deliberately in the migrations.
_CONSTRAINT_ERRORS: dict[str, type[DomainError]] = {
    "users_student_id_key": AlreadyExists,
    "branches_name_key": AlreadyExists,
    "seats_branch_label_key": AlreadyExists,
    "reservations_seat_no_overlap": SeatConflict,
    "reservations_user_no_overlap": UserOverlap,
    "waitlist_no_duplicate": AlreadyExists,
    "branch_closures_no_overlap": AlreadyExists,  # a date has at most one closure
    # A valid token for an account deleted since: the token no longer names anyone.
    "reservations_user_id_fkey": InvalidToken,
    "waitlist_entries_user_id_fkey": InvalidToken,
    "notifications_user_id_fkey": InvalidToken,
    "audit_log_actor_id_fkey": InvalidToken,
    "idempotency_keys_user_id_fkey": InvalidToken,
}


def error_for_constraint(exc: asyncpg.PostgresError) -> DomainError:
    """The domain error for a violated constraint; unknown constraints are re-raised."""
    name = getattr(exc, "constraint_name", None)
    error_type = _CONSTRAINT_ERRORS.get(name or "")
    if error_type is None:
        raise exc
    return error_type()


class ErrorBody(BaseModel):
    """Body of every non-validation error response."""

    detail: str
    code: str


class ValidationIssue(BaseModel):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorBody(BaseModel):
    """FastAPI's 422 shape (the offending input is not echoed back)."""

    detail: list[ValidationIssue]


def error_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the domain errors a route can raise."""
    by_status: dict[int, list[type[DomainError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        description = " / ".join(f"`{e.code}`: {e.default_detail}" for e in group)
        if status == 422:  # domain 422s share the status with request validation
            description += " / request validation (FastAPI's shape)"
            responses[status] = {
                "model": ErrorBody | ValidationErrorBody,
                "description": description,
            }
        else:
            responses[status] = {"model": ErrorBody, "description": description}
    return responses


def error_body(exc: DomainError) -> dict[str, Any]:
    """The JSON body a domain error is answered with (times in UTC with ``Z``)."""
    extra = {k: iso_z(v) if isinstance(v, datetime) else v for k, v in exc.extra.items()}
    return {"detail": exc.detail, "code": exc.code, **extra}


def error_response(exc: DomainError) -> JSONResponse:
    """The one rendering of an error as HTTP, whichever layer answers (the exception
    handlers here, the ASGI middlewares, the body limit)."""
    return JSONResponse(error_body(exc), exc.status_code, headers=exc.headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return error_response(exc)


def validation_issues(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's 422 ``detail`` without ``input`` and ``ctx``: echoing the input would send
    a refused password back, and cannot be done at all for NaN or a lone surrogate."""
    return [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = validation_issues(exc)
    if issues and all(issue["type"] == InvalidInterval.code for issue in issues):
        # The schemas' "end after start" rule (app/schemas/common.py): the contract's
        # 422 `invalid_interval`, when nothing else in the request is malformed.
        return error_response(InvalidInterval(str(issues[0]["msg"])))
    return JSONResponse({"detail": issues}, 422)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request, fallback: Mapping[str, str] | None) -> dict[str, str]:
    # Starlette's 405 names the methods of the first route whose path matches; RFC 9110
    # wants every method the resource supports (GET and POST /reservations are two
    # routes). Ask the routes which methods they would take for this path.
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    if not allowed:  # a 405 from inside a mount (static files): keep what it said
        return dict(fallback or {})
    return {**(fallback or {}), "Allow": ", ".join(allowed)}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own errors: unknown route (404), wrong method (405), ...
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body FastAPI could not even parse: malformed input
        detail = exc.detail if isinstance(exc.detail, str) else "Malformed request body"
        issue = {"type": "json_invalid", "loc": ["body"], "msg": detail}
        return JSONResponse({"detail": [issue]}, 422)
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    headers = _allowed_methods(request, exc.headers) if exc.status_code == 405 else exc.headers
    return error_response(HttpError(exc.status_code, detail, headers=dict(headers or {})))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
