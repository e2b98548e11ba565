"""The error model of the HTTP API and the mapping of error codes to HTTP statuses.

Every error leaves as `{"error": {"code", "message"}}` (plus `field` for a validation error
that names one). Engine refusals carry their contract code; this module only decides the
status. Nothing here reports success for a command whose outcome is unknown: a journal
failure or a stopped actor is a 503, an unexpected exception a 500.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.responses import Response

from engine import errors as codes
from engine.errors import (
    ActorUnavailable,
    EngineError,
    HandlerCrashed,
    JournalFailed,
    Overloaded,
    Refused,
)
from web.responses import JsonResponse
from web.schemas import instant

log = logging.getLogger(__name__)

TOKEN_MISSING = "TOKEN_MISSING"
OVERLOADED = "OVERLOADED"
UNAVAILABLE = "UNAVAILABLE"
INTERNAL = "INTERNAL"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
UPGRADE_REQUIRED = "UPGRADE_REQUIRED"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
# Answered by the HTTP protocol itself (web.protocol) before a request reaches the app.
REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"

STATUS_OF_CODE: dict[str, int] = {
    TOKEN_MISSING: 401,
    codes.TOKEN_INVALID: 401,
    codes.QUEUE_WAITING: 403,
    codes.TOKEN_COMPLETED: 403,
    codes.TOKEN_EXPIRED: 403,
    codes.NOT_OWNER: 403,
    codes.TOKEN_LEFT: 403,
    codes.ROOM_NOT_OPEN: 403,
    codes.WRONG_ROOM: 403,
    codes.CHALLENGE_FAILED: 403,
    codes.NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    REQUEST_TIMEOUT: 408,
    UPGRADE_REQUIRED: 426,
    UNSUPPORTED_MEDIA_TYPE: 415,
    HEADERS_TOO_LARGE: 431,
    codes.VALIDATION_ERROR: 422,
    codes.SEAT_TAKEN: 409,
    codes.HOLD_LIMIT: 409,
    codes.HOLD_EXPIRED: 409,
    codes.IDEMPOTENCY_CONFLICT: 409,
    codes.DATE_ON_SALE: 409,
    codes.ON_SALE_STARTED: 409,
    codes.INSUFFICIENT_BALANCE: 402,
    codes.BALANCE_LIMIT: 409,
    OVERLOADED: 503,
    UNAVAILABLE: 503,
    INTERNAL: 500,
}

# One encoder for every error body: `json.dumps` with options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode

BEARER_CHALLENGE = 'Bearer realm="concert-queue"'

# Seconds a client is told to wait when a command could not run for a passing reason.
UNAVAILABLE_RETRY_AFTER = 1


class ApiError(Exception):
    """An error answer decided by the web layer itself (gate, validation, routing)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.status = status or STATUS_OF_CODE.get(code, 400)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    return {"error": detail}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if status == 401:
        # RFC 9110: a 401 names the scheme that would be accepted.
        headers = {**(headers or {}), "WWW-Authenticate": BEARER_CHALLENGE}
    return JsonResponse(_encode(error_body(code, message, field)).encode(), status, headers)


def _detailed(status: int, error: Refused) -> Response:
    """A refusal whose error body says more (`opensAt` of ROOM_NOT_OPEN); instants leave as
    the API's one time representation."""
    body = error_body(error.code, error.message, error.field)
    for name, value in error.details:
        if name.endswith("At") and isinstance(value, int | float):
            body["error"][name] = instant(value)
        else:
            body["error"][name] = value
    return JsonResponse(_encode(body).encode(), status)


def response_for(error: Exception) -> Response:
    """The error answer for anything a handler raised."""
    if isinstance(error, ApiError):
        return error_response(
            error.status, error.code, error.message, field=error.field, headers=error.headers
        )
    if isinstance(error, Refused):
        status = STATUS_OF_CODE.get(error.code, 400)
        if error.details:
            return _detailed(status, error)
        return error_response(status, error.code, error.message, field=error.field)
    if isinstance(error, Overloaded):
        retry = str(max(1, math.ceil(error.retry_after)))
        return error_response(503, OVERLOADED, error.message, headers={"Retry-After": retry})
    if isinstance(error, ActorUnavailable | JournalFailed):
        # The command's outcome is not acknowledged; the client may retry (idempotency keys
        # make that safe for charges and payments).
        log.warning("command not acknowledged: %s", error)
        return error_response(
            503, UNAVAILABLE, error.message, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}
        )
    if isinstance(error, HandlerCrashed | EngineError):
        log.error("command failed: %s", error)
        return error_response(500, INTERNAL, "internal error")
    log.exception("unexpected error", exc_info=error)
    return error_response(500, INTERNAL, "internal error")
