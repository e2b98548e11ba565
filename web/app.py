"""The composition root: `create_app(settings)` wires store, engine, hub, metrics and routes.

    app = create_app(Settings.from_env())   # an ASGI app; uvicorn runs it (see web.cli)

The lifespan opens the store named by `DATABASE_URL`, recovers the engine from its journal in
the background (`/readyz` turns 200 when done), and on shutdown drains (see web.runtime).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles

from web import openapi
from web.admin import AdminApi
from web.api import PublicApi
from web.endpoints import Endpoint
from web.errors import http_exception_handler, unexpected_error_handler
from web.fastpath import FastPath
from web.metrics import MetricsMiddleware
from web.runtime import Runtime, StoreOpener, open_configured_store
from web.service import ServiceRoutes
from web.settings import Settings

TITLE = "concert-queue"
VERSION = "0.1.0"


# Exact paths never reach Starlette's router (see web.fastpath); the router tries the routes
# with path parameters in order, a regular expression each, until one matches: the on-sale's
# busiest of those goes first (no two routes match the same path, so order is free).
BUSIEST = (("GET", "/api/concerts/{concertId}/dates/{date}/seats"),)


def busiest_first(endpoints: list[Endpoint]) -> list[Endpoint]:
    rank = {key: n for n, key in enumerate(BUSIEST)}
    return sorted(endpoints, key=lambda e: rank.get((e.method, e.path), len(rank)))


def create_app(
    settings: Settings | None = None, *, store_opener: StoreOpener = open_configured_store
) -> Starlette:
    settings = settings or Settings.from_env()
    runtime = Runtime(settings, store_opener)
    service = ServiceRoutes(runtime, settings.static_dir)
    endpoints = [
        *service.endpoints(),
        *PublicApi(runtime).endpoints(),
        *AdminApi(runtime).endpoints(),
    ]
    service.set_openapi(openapi.build(endpoints, title=TITLE, version=VERSION))
    endpoint_routes = [endpoint.route() for endpoint in busiest_first(endpoints)]
    routes: list[BaseRoute] = [*endpoint_routes]
    routes += [
        WebSocketRoute("/ws", runtime.hub.serve, name="websocket"),
        Mount(
            "/static",
            StaticFiles(directory=settings.static_dir, check_dir=False),
            name="static",
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(FastPath, routes=endpoint_routes, metrics=runtime.metrics),
            Middleware(MetricsMiddleware, metrics=runtime.metrics),
        ],
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=runtime.lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    return app
