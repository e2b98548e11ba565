"""The composition root: `create_app(settings)` wires store, engine, hub, metrics and routes.

    app = create_app(Settings.from_env())   # an ASGI app; uvicorn runs it (see web.cli)

The lifespan opens the store named by `DATABASE_URL`, recovers the engine from its journal in
the background (`/readyz` turns 200 when done), and on shutdown drains (see web.runtime).
Requests go through the one dispatch path (web/dispatch.py).
"""

from __future__ import annotations

import functools

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from web import admin, api, openapi
from web.dispatch import Dispatch
from web.endpoints import EndpointApp
from web.runtime import EngineOpener, Runtime, open_embedded_engine
from web.service import ServiceRoutes
from web.settings import Settings

TITLE = "concert-queue"
VERSION = "0.1.0"
WEBSOCKET_PATH = "/ws"


class ServiceApp(Dispatch):
    """The service's ASGI app (the dispatch itself, so that no frame is added before it),
    and the runtime behind it (for the CLI and the tests)."""

    runtime: Runtime


def create_app(
    settings: Settings | None = None, *, engine_opener: EngineOpener = open_embedded_engine
) -> ServiceApp:
    settings = settings or Settings.from_env()
    runtime = Runtime(settings, engine_opener)
    service = ServiceRoutes(runtime, settings.static_dir)
    endpoints = [*service.endpoints(), *api.endpoints(), *admin.endpoints()]
    service.set_openapi(
        functools.partial(
            openapi.build, endpoints, title=TITLE, version=VERSION, websocket_path=WEBSOCKET_PATH
        )
    )
    app = ServiceApp(
        [EndpointApp(endpoint, runtime) for endpoint in endpoints],
        websocket_path=WEBSOCKET_PATH,
        websocket=runtime.hub.app,
        static=Mount("/static", StaticFiles(directory=settings.static_dir, check_dir=False)),
        metrics=runtime.metrics,
        lifespan=runtime.lifespan,
    )
    app.runtime = runtime
    return app
