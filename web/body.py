"""Reading a JSON request body: at most 16 KiB, validated strictly against a request model.

Anything that does not fit (too big, not JSON, wrong types, unknown or missing fields) is a
422 VALIDATION_ERROR naming the offending field, so a client learns exactly what to fix.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from engine.errors import VALIDATION_ERROR
from web.errors import ApiError

MAX_BODY_BYTES = 16 * 1024

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    declared = request.headers.get("content-length")
    if declared is not None and (
        not declared.isascii() or not declared.isdigit() or int(declared) > MAX_BODY_BYTES
    ):
        raise _too_big()
    # Read message by message so a client lying about (or omitting) Content-Length cannot
    # make us buffer more than the limit. Straight from `receive` rather than through
    # `Request.stream()`, an async generator that cost as much as validating the body.
    receive = request.receive
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise _too_big()
        if not message.get("more_body", False):
            return parse(model, body)


def parse(model: type[M], raw: bytes | str) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as invalid:
        raise validation_error(invalid) from None


def validation_error(invalid: ValidationError) -> ApiError:
    first = invalid.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "json_invalid":
        return ApiError(VALIDATION_ERROR, f"the body is not valid JSON: {first['msg']}")
    if first["type"] == "extra_forbidden":
        return ApiError(VALIDATION_ERROR, f"unknown field {field}", field=field)
    message = f"{field}: {first['msg']}" if field else first["msg"]
    return ApiError(VALIDATION_ERROR, message, field=field)


def _too_big() -> ApiError:
    return ApiError(VALIDATION_ERROR, f"the body is larger than {MAX_BODY_BYTES} bytes")
