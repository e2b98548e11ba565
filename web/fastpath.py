"""The routes without path parameters, dispatched by one dict lookup ahead of Starlette's stack.

A request to `POST /api/reservations` used to pass the metrics middleware, Starlette's
exception middleware, the router (a regular expression per route tried) and the route before
its endpoint ran, and it passed them all again, frame by frame, when its task resumed with the
commit's answer. An endpoint answers every error of its handler itself (`EndpointApp`), so for
a path that names exactly one endpoint those layers only cost time: this middleware, placed
first, looks `(method, path)` up and calls the endpoint directly, counting the request as the
metrics middleware would. Everything else (path parameters, HEAD, unknown paths, wrong methods,
a root path) goes down Starlette's stack as before.
"""

from __future__ import annotations

import time

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from web.endpoints import EndpointApp
from web.metrics import Metrics


class FastPath:
    def __init__(self, app: ASGIApp, routes: list[Route], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.routes: dict[tuple[str, str], tuple[Route, EndpointApp]] = {}
        for route in routes:
            endpoint = route.app
            if route.param_convertors or not isinstance(endpoint, EndpointApp):
                continue
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds it to GET routes and answers it bodiless
                    self.routes[(method, route.path)] = (route, endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self.routes.get((scope["method"], scope["path"]))
            if found is not None:
                route, endpoint = found
                scope["route"] = route
                scope["endpoint"] = endpoint
                scope["path_params"] = {}
                started = time.perf_counter()
                status = await endpoint.respond(scope, receive, send)
                self.metrics.observe(
                    scope["method"], route.path, status, time.perf_counter() - started
                )
                return
        await self.app(scope, receive, send)
