"""One declaration per HTTP route: handler, body model, responses, auth and error codes.

The Starlette routes and `/openapi.json` are both built from these declarations, so the
document cannot drift from what is served. Handlers raise `ApiError` or engine errors; the
route wrapper turns them into the error model without going through exception middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from web.errors import response_for
from web.responses import JSON, JsonResponse

Handler = Callable[[Request], Awaitable[Response]]
Auth = Literal["none", "token", "active", "admin"]


@dataclass(frozen=True, slots=True)
class Out:
    """A documented response: a model (or a list of it), or a non-JSON media type."""

    model: type[BaseModel] | None = None
    many: bool = False
    description: str = "OK"
    media_type: str = JSON
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: dict[str, object] = field(default_factory=lambda: {"type": "string"})
    required: bool = True


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth = "active"
    body: type[BaseModel] | None = None
    responses: dict[int, Out] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    tag: str = "api"
    engine: bool = True  # needs the running engine: 503 UNAVAILABLE while it starts or stops

    def route(self) -> Route:
        name = self.handler.__name__
        return Route(self.path, EndpointApp(self.handler), methods=[self.method], name=name)


class EndpointApp:
    """One route's ASGI app: the handler's response, or its error in the error model.

    An ASGI app rather than a request -> response function, because Starlette wraps such a
    function in an exception-handling layer that intercepts every `send`; every error of a
    handler is answered here, so that layer only cost time (a few percent of the hold route).
    """

    __slots__ = ("handler",)

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.respond(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer the request; the status answered."""
        request = Request(scope, receive, send)
        try:
            response = await self.handler(request)
        except Exception as error:
            response = response_for(error)
        await response(scope, receive, send)
        return response.status_code


def json_response(
    content: BaseModel | Sequence[BaseModel],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    if isinstance(content, BaseModel):
        body = content.model_dump_json()
    else:
        body = "[" + ",".join(item.model_dump_json() for item in content) + "]"
    return JsonResponse(body.encode(), status, headers)
