"""The service's one dispatch path: every HTTP request finds its endpoint here, is answered by
it (or by the routing error), and is counted in the metrics once, here.

A route without path parameters is found by one dict lookup on (method, path); the routes
with parameters (a few) are tried in turn with Starlette's own matching; then the static
files. What matches no route is a 404 (an HTML page for a browser, web/pages.py), a path
whose route takes other methods a 405 with `Allow` (OPTIONS included), a plain GET of the
websocket's path a 426; all in the error model.
Websockets go to the hub, the lifespan to Starlette's router.

This is the speed-critical shortcut of the web layer, kept in this one module: there is no
middleware stack and no regular expression between a request and its endpoint, only what an
on-sale's request needs (`loadtests.count_instructions` measures it; the benchmark guards it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount, Route, Router
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from engine.errors import NOT_FOUND
from web.endpoints import EndpointApp
from web.errors import INTERNAL, METHOD_NOT_ALLOWED, UPGRADE_REQUIRED, error_response
from web.metrics import Metrics
from web.pages import not_found_page, wants_html

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"  # the route label of requests that found no route


class Dispatch:
    """The ASGI app of the service (see the module docstring)."""

    def __init__(
        self,
        endpoints: Sequence[EndpointApp],
        *,
        websocket_path: str,
        websocket: ASGIApp,
        static: Mount,
        metrics: Metrics,
        lifespan: Lifespan[ASGIApp],
    ) -> None:
        self.metrics = metrics
        self.websocket_path = websocket_path
        self.websocket = websocket
        self.static = static
        self._lifespan = Router(lifespan=lifespan)
        self._exact: dict[tuple[str, str], EndpointApp] = {}
        self._templated: list[tuple[Route, EndpointApp]] = []
        # route path -> the methods it takes; a websocket's handshake is a GET
        self._methods: dict[str, list[str]] = {websocket_path: ["GET"]}
        for app in endpoints:
            endpoint = app.endpoint
            self._methods.setdefault(endpoint.path, []).append(endpoint.method)
            methods = [endpoint.method, "HEAD"] if endpoint.method == "GET" else [endpoint.method]
            route = Route(endpoint.path, app.respond, methods=methods)
            if route.param_convertors:
                self._templated.append((route, app))
            else:
                for method in methods:
                    self._exact[(method, endpoint.path)] = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # One frame for an HTTP request: each frame between the request's task and the
        # engine's reply is entered on the way in and resumed again when the reply comes.
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        app = self._exact.get((method, scope["path"]))
        if app is not None:
            scope["path_params"] = {}
            status = await app.respond(scope, receive, send)
            route = app.path
        else:
            route, status = await self._routed(scope, receive, send)
        self.metrics.observe(method, route, status, time.perf_counter() - started)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self._lifespan(scope, receive, send)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> tuple[str, int]:
        """A request no exact route takes: (the route's label, the status answered)."""
        allowed: list[str] | None = None
        for route, app in self._templated:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                return route.path, await app.respond(scope, receive, send)
            if match is Match.PARTIAL:
                allowed = self._methods[route.path]
        path = scope["path"]
        if allowed is None and path in self._methods:
            allowed = self._methods[path]
        if path == self.websocket_path and scope["method"] in _UPGRADABLE:
            response = error_response(
                426, UPGRADE_REQUIRED, f"{path} is a websocket: connect with an upgrade"
            )
            await response(scope, receive, send)
            return path, 426
        if allowed is not None:
            response = error_response(
                405,
                METHOD_NOT_ALLOWED,
                f"{scope['method']} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(_with_head(allowed)))},
            )
            await response(scope, receive, send)
            return UNMATCHED, 405
        if self.static.matches(scope)[0] is Match.FULL:
            return self.static.path, await self._static(scope, receive, send)
        response = (
            not_found_page(path)
            if wants_html(scope)
            else error_response(404, NOT_FOUND, f"no route {path}")
        )
        await response(scope, receive, send)
        return UNMATCHED, 404

    async def _static(self, scope: Scope, receive: Receive, send: Send) -> int:
        status = 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        scope.update(self.static.matches(scope)[1])
        try:
            await self.static.handle(scope, receive, noting)
        except HTTPException as error:  # StaticFiles' way of saying 404 (or 405)
            status = error.status_code
            code = NOT_FOUND if status == 404 else METHOD_NOT_ALLOWED
            headers = dict(error.headers or {})
            response = (
                not_found_page(scope["path"])
                if status == 404 and wants_html(scope)
                else error_response(status, code, f"no file {scope['path']}", headers=headers)
            )
            await response(scope, receive, send)
        except Exception:
            log.exception("serving a static file failed")
            if status == 500:
                await error_response(500, INTERNAL, "internal error")(scope, receive, send)
        return status

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == self.websocket_path:
            await self.websocket(scope, receive, send)
            return
        await send({"type": "websocket.close", "code": 1008})  # no such websocket


_UPGRADABLE = ("GET", "HEAD")  # a plain one is answered 426: the handshake needs an upgrade


def _with_head(methods: list[str]) -> set[str]:
    return {*methods, "HEAD"} if "GET" in methods else set(methods)
