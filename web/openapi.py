"""`/openapi.json`: built from the endpoint declarations and the pydantic models they name.

Schemas come from `models_json_schema` (request models in validation mode, responses in
serialization mode, both camelCase); each route lists its body, its responses and, grouped by
status, every error code it can answer. Examples are functions of a sample of the live
catalog (web/examples.py): the service builds the document again when the sample changes.
The websocket protocol, which OpenAPI cannot express, is described under `x-websocket` with
the schema of every message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from engine.errors import QUEUE_WAITING, TOKEN_COMPLETED, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_LEFT
from web.endpoints import Endpoint
from web.errors import OVERLOADED, STATUS_OF_CODE, TOKEN_MISSING, UNAVAILABLE
from web.examples import PLACEHOLDER, Sample
from web.responses import JSON
from web.schemas import CLIENT_MESSAGES, SERVER_MESSAGES, ErrorOut

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"{(\w+)}")

AUTH_ERRORS: dict[str, tuple[str, ...]] = {
    "none": (),
    "token": (TOKEN_MISSING, TOKEN_INVALID, TOKEN_LEFT),
    "active": (
        TOKEN_MISSING,
        TOKEN_INVALID,
        TOKEN_LEFT,
        QUEUE_WAITING,
        TOKEN_COMPLETED,
        TOKEN_EXPIRED,
    ),
    "admin": (TOKEN_MISSING, TOKEN_INVALID),
}
SECURITY = {"none": None, "token": "queueToken", "active": "queueToken", "admin": "adminToken"}


def build(
    endpoints: Sequence[Endpoint],
    sample: Sample = PLACEHOLDER,
    *,
    title: str,
    version: str,
    websocket_path: str,
) -> dict[str, Any]:
    """The document of `endpoints`, its examples naming `sample`."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorOut, "serialization")]
    for endpoint in endpoints:
        if endpoint.body is not None:
            models.append((endpoint.body, "validation"))
        for out in endpoint.responses.values():
            if out.model is not None:
                models.append((out.model, "serialization"))
    models += [(m, "serialization") for m in SERVER_MESSAGES]
    models += [(m, "validation") for m in CLIENT_MESSAGES]
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema(unique, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation = _operation(endpoint, ref, sample)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    paths[websocket_path] = {"get": _websocket_operation(ref(ErrorOut, "serialization"))}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Concert ticketing for the on-sale rush. Instants are ISO-8601 UTC strings "
                "with milliseconds (2027-01-15T20:04:05.123Z). Errors are "
                '{"error": {"code", "message", "field"?}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "queueToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token of POST /api/queue/tokens",
                },
                "adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
            },
        },
        "x-websocket": {
            "path": websocket_path,
            "subprotocols": {
                "concert-queue": "the protocol of these messages (the server accepts it)",
                "token.<token>": "the queue token, offered beside concert-queue",
            },
            "query": {"token": "a queue token, for clients that cannot offer subprotocols"},
            "serverMessages": {_message_type(m): ref(m, "serialization") for m in SERVER_MESSAGES},
            "clientMessages": {_message_type(m): ref(m, "validation") for m in CLIENT_MESSAGES},
            "closeCodes": {
                "1001": "the server is shutting down",
                "1008": "missing or invalid token",
                "1013": "the client was too slow to keep up, or the service is starting",
            },
        },
    }


def _operation(endpoint: Endpoint, ref: Any, sample: Sample) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
    }
    scheme = SECURITY[endpoint.auth]
    if scheme is not None:
        operation["security"] = [{scheme: []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(endpoint.path)
    ]
    for param in endpoint.params:
        entry = {
            "name": param.name,
            "in": param.where,
            "required": param.required,
            "description": param.description,
            "schema": param.schema,
        }
        if param.example is not None:
            entry["example"] = param.example(sample)
        existing = next((p for p in parameters if p["name"] == param.name), None)
        if existing is not None:
            existing.update(entry)
        else:
            parameters.append(entry)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "description": "JSON, at most 16 KiB; unknown fields are refused",
            "content": {JSON: {"schema": ref(endpoint.body, "validation")}},
        }
        if endpoint.example is not None:
            operation["requestBody"]["content"][JSON]["example"] = endpoint.example(sample)
    responses: dict[str, Any] = {}
    for status, out in sorted(endpoint.responses.items()):
        response: dict[str, Any] = {"description": out.description}
        if out.model is not None:
            schema = ref(out.model, "serialization")
            if out.many:
                schema = {"type": "array", "items": schema}
            response["content"] = {out.media_type: {"schema": schema}}
        else:
            response["content"] = {out.media_type: {"schema": out.schema}}
        if out.links:
            response["links"] = out.links
        responses[str(status)] = response
    codes = [*AUTH_ERRORS[endpoint.auth], *endpoint.errors]
    if endpoint.body is not None or endpoint.params:
        codes.append("VALIDATION_ERROR")
    if endpoint.engine:
        codes.append(UNAVAILABLE)  # while starting or stopping, and for unacknowledged commands
        if endpoint.method != "GET":
            codes.append(OVERLOADED)  # a full mailbox
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(STATUS_OF_CODE[code], []).append(code)
    error_schema = ref(ErrorOut, "serialization")
    for status, status_codes in sorted(by_status.items()):
        response = {
            "description": "error codes: " + ", ".join(status_codes),
            "content": {JSON: {"schema": error_schema}},
        }
        if status == 503:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
        responses[str(status)] = response
    operation["responses"] = responses
    return operation


def _websocket_operation(error_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationId": "websocket",
        "summary": "The event stream (a websocket; messages are described under x-websocket)",
        "tags": ["websocket"],
        "parameters": [
            {
                "name": "token",
                "in": "query",
                "required": False,
                "description": "the queue token, unless offered as the subprotocol token.<token>",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "101": {"description": "switching protocols to a websocket"},
            "426": {
                "description": "error codes: UPGRADE_REQUIRED (a plain HTTP request)",
                "content": {JSON: {"schema": error_schema}},
            },
        },
    }


def _message_type(model: type[BaseModel]) -> str:
    annotation = model.model_fields["type"].annotation
    args: tuple[Any, ...] = getattr(annotation, "__args__", ())
    return " | ".join(str(a) for a in args) if args else model.__name__
