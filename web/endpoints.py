"""One declaration per HTTP route, and the wrapper that serves it as declared.

An `Endpoint` names its method and path, handler, gate (`auth`), body model, responses,
error codes and examples (functions of the live catalog's sample, web/examples.py). The
routes (web/dispatch.py) and `/openapi.json` (web/openapi.py) are both built from these
declarations, and the wrapper (`EndpointApp`) applies the declared gate before the
handler runs and hands the handler what the gate checked (`Call`), so a handler cannot
declare one gate and check another, and the document cannot drift from what is served.
Every error a gate or handler raises is answered here, in the error model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from engine.face import Engine, TokenView
from web import gate
from web.errors import response_for
from web.examples import Sample
from web.responses import JSON, JsonResponse

if TYPE_CHECKING:
    from web.runtime import Runtime

Auth = Literal["none", "token", "active", "admin"]


class Call:
    """What a handler is handed: the request and what its endpoint's gate checked.

    `engine` is set for every endpoint declared with `engine=True`, `me` (the caller's checked
    token view) behind the "token" and "active" gates; a handler reading one its declaration
    does not provide gets an AttributeError, which the tests of every route would show.
    """

    # A plain slotted class rather than a frozen dataclass: one is made per request, and a
    # frozen dataclass sets each field through `object.__setattr__`.
    __slots__ = ("engine", "me", "request", "runtime")

    engine: Engine
    me: TokenView

    def __init__(
        self,
        request: Request,
        runtime: Runtime,
        engine: Engine | None = None,
        me: TokenView | None = None,
    ) -> None:
        self.request = request
        self.runtime = runtime
        if engine is not None:
            self.engine = engine
        if me is not None:
            self.me = me


Handler = Callable[[Call], Awaitable[Response]]
Example = Callable[[Sample], object]


@dataclass(frozen=True, slots=True)
class Out:
    """A documented response: a model (or a list of it), or another body and its schema; and
    the OpenAPI links from it to the operations it makes possible."""

    model: type[BaseModel] | None = None
    many: bool = False
    description: str = "OK"
    media_type: str = JSON
    schema: dict[str, object] = field(default_factory=lambda: {"type": "string"})
    links: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: dict[str, object] = field(default_factory=lambda: {"type": "string"})
    required: bool = True
    example: Example | None = None


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
    example: Example | None = None  # of the body

    @property
    def name(self) -> str:
        return self.handler.__name__


class EndpointApp:
    """Serves one endpoint: its gate, its handler, and its errors in the error model."""

    __slots__ = ("_gate", "endpoint", "handler", "path", "runtime")

    def __init__(self, endpoint: Endpoint, runtime: Runtime) -> None:
        self.endpoint = endpoint
        self.path = endpoint.path
        self.handler = endpoint.handler
        self.runtime = runtime
        self._gate = _GATES[endpoint.auth, endpoint.engine]

    async def respond(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer the request; the status answered."""
        request = Request(scope, receive, send)
        try:
            response = await self.handler(self._gate(self.runtime, request))
        except Exception as error:
            response = response_for(error)
        await response(scope, receive, send)
        return response.status_code


def _nothing(runtime: Runtime, request: Request) -> Call:
    return Call(request, runtime)


def _admin_only(runtime: Runtime, request: Request) -> Call:
    gate.admin(request, runtime.settings.admin_token)
    return Call(request, runtime)


def _open(runtime: Runtime, request: Request) -> Call:
    return Call(request, runtime, runtime.engine())


def _token(runtime: Runtime, request: Request) -> Call:
    engine = runtime.engine()
    return Call(request, runtime, engine, gate.any_token(engine, request))


def _active(runtime: Runtime, request: Request) -> Call:
    engine = runtime.engine()
    return Call(request, runtime, engine, gate.active_token(engine, request))


def _admin(runtime: Runtime, request: Request) -> Call:
    gate.admin(request, runtime.settings.admin_token)
    return Call(request, runtime, runtime.engine())


# By (auth, engine): a token gate needs the engine to read the token.
_GATES: dict[tuple[Auth, bool], Callable[[Runtime, Request], Call]] = {
    ("none", False): _nothing,
    ("admin", False): _admin_only,
    ("none", True): _open,
    ("token", True): _token,
    ("active", True): _active,
    ("admin", True): _admin,
}


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
