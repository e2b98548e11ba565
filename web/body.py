"""Reading a JSON request body: at most 16 KiB, JSON only, validated strictly against a model.

Anything that does not fit is refused naming what to fix: a body over 16 KiB, not JSON, an
object with a key given twice, wrong types, unknown or missing fields are 422
VALIDATION_ERROR (with the offending `field`); a `Content-Type` other than JSON is 415.
"""

from __future__ import annotations

import functools
import json
import json.scanner
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from engine.errors import VALIDATION_ERROR
from web.errors import UNSUPPORTED_MEDIA_TYPE, ApiError

MAX_BODY_BYTES = 16 * 1024

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    media = length = None
    # One pass over the raw headers for both (Headers.get would scan them once each).
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            media = value
        elif name == b"content-length":
            length = value
    if media is not None and media != _JSON and not _is_json(media.decode("latin-1")):
        raise ApiError(
            UNSUPPORTED_MEDIA_TYPE,
            f"send JSON (Content-Type: application/json), not {media.decode('latin-1')}",
        )
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
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
    """`raw` as a `model`: JSON with no key given twice, validated strictly."""
    try:
        value = model.model_validate_json(raw)
    except ValidationError as invalid:
        raise validation_error(invalid) from None
    # pydantic's parser keeps the last of two equal keys. Every key is followed by a colon,
    # so a body with no more colons than the fields it set has no key twice; only a body
    # with a colon in a string (or nested objects) is parsed again to make sure.
    colons = raw.count(b":") if isinstance(raw, bytes) else raw.count(":")
    if colons > len(value.model_fields_set) or _nested(model):
        _no_key_twice(raw)
    return value


@functools.cache
def _nested(model: type[BaseModel]) -> bool:
    """Whether the model holds other models (whose keys its own fields do not count)."""
    return any(_mentions_model(field.annotation) for field in model.model_fields.values())


def _mentions_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


def _no_key_twice(raw: bytes | str) -> None:
    try:
        _loads(raw)
    except DuplicateKey as duplicate:
        raise ApiError(
            VALIDATION_ERROR, f"the key {duplicate.key} is given twice", field=duplicate.key
        ) from None


def validation_error(invalid: ValidationError) -> ApiError:
    first = invalid.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "json_invalid":
        return ApiError(VALIDATION_ERROR, f"the body is not valid JSON: {first['msg']}")
    if first["type"] == "extra_forbidden":
        return ApiError(VALIDATION_ERROR, f"unknown field {field}", field=field)
    if first["type"] == "model_type":
        return ApiError(VALIDATION_ERROR, "the body must be a JSON object")
    words = _WORDS.get(first["type"])
    if words is not None and field:
        message = f"{field} {words.format(**first.get('ctx', {}))}"
    else:
        message = f"{field}: {first['msg']}" if field else first["msg"]
    return ApiError(VALIDATION_ERROR, message, field=field)


# pydantic's words for the common refusals, said the way the engine's refusals say them
# ("seat must be between 1 and 50"), after the field's name.
_WORDS: dict[str, str] = {
    "missing": "is required",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "string_pattern_mismatch": "must match {pattern}",
}


def _loads(raw: bytes | str) -> Any:
    """The JSON value of `raw` (already known to be valid JSON), refusing a key given twice
    in any object (`DuplicateKey`)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    start = len(text) - len(text.lstrip(_WHITESPACE))
    value, end = _scan(text, start)
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data at character {end}")
    return value


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    values = dict(pairs)
    if len(values) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return values


def _is_json(media: str) -> bool:
    kind = media.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


_JSON = b"application/json"
_WHITESPACE = " \t\n\r"  # JSON's own; str.strip() would take more
_DECODER: Any = json.JSONDecoder(object_pairs_hook=_object)  # Any: typeshed is too narrow
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)


def _too_big() -> ApiError:
    return ApiError(VALIDATION_ERROR, f"the body is larger than {MAX_BODY_BYTES} bytes")
