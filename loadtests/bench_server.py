"""The service with a bare Starlette JSON endpoint beside it, in one process, for bench_http.

    python -m loadtests.bench_server --port 8123 --database-url sqlite:////tmp/x.db

`POST /bare/reservations` goes to a minimal Starlette app (one route, no middleware) that
parses the JSON body and answers 201 with a small JSON object: what any Starlette JSON endpoint
costs under this server. Everything else goes to `web.app.create_app(Settings.from_env())`.
Both share the process, the event loop and the uvicorn settings of `concert-queue serve`
(uvloop, httptools, no access log), so their ratio isolates what the service adds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from loadtests.gc_meter import GcMeter
from web.app import create_app
from web.cli import WS_MAX_MESSAGE
from web.settings import Settings

BARE_PREFIX = "/bare/"
LAG_TICK = 0.005  # the loop-lag probe's period


class Diagnostics:
    """What stalls the server's event loop: collector passes and how late a 5 ms timer fires.

    `GET /bare/diagnostics` starts the probe on first use and returns the figures since the
    previous call, so the benchmark can attribute a latency tail to the collector, or to
    anything else that holds the loop (a long turn, a big body, a thread holding the GIL).
    """

    def __init__(self) -> None:
        self.gc = GcMeter()
        self.gc.__enter__()
        self.lag_max = 0.0
        self.lags_over_20ms = 0
        self.lags_over_100ms = 0
        self._probe: asyncio.Task[None] | None = None

    async def _measure_lag(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            late = time.perf_counter() - started - LAG_TICK
            self.lag_max = max(self.lag_max, late)
            self.lags_over_20ms += late > 0.020
            self.lags_over_100ms += late > 0.100

    async def endpoint(self, request: Request) -> Response:
        """The figures since the previous call (each call starts a new window)."""
        if self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._measure_lag())
        figures = self.gc.as_dict() | {
            "loop_lag_max_ms": round(self.lag_max * 1000, 2),
            "loop_lags_over_20ms": self.lags_over_20ms,
            "loop_lags_over_100ms": self.lags_over_100ms,
        }
        self.gc.seconds, self.gc.collections, self.gc.longest = 0.0, 0, 0.0
        self.lag_max, self.lags_over_20ms, self.lags_over_100ms = 0.0, 0, 0
        return JSONResponse(figures)


async def bare_reservation(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"reservationId": "bare", "seat": body["seat"], "status": "HELD"}, 201)


def bare_app() -> Starlette:
    diagnostics = Diagnostics()
    return Starlette(
        routes=[
            Route("/bare/reservations", bare_reservation, methods=["POST"]),
            Route("/bare/diagnostics", diagnostics.endpoint, methods=["GET"]),
        ]
    )


class SideBySide:
    """Route `/bare/...` HTTP requests to the bare app, everything else (lifespan too) to the
    service."""

    def __init__(self, service: ASGIApp, bare: ASGIApp) -> None:
        self.service = service
        self.bare = bare

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(BARE_PREFIX):
            await self.bare(scope, receive, send)
        else:
            await self.service(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    settings = Settings.from_env().replace(
        host="127.0.0.1", port=args.port, database_url=args.database_url
    )
    app = SideBySide(create_app(settings), bare_app())
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE,
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=16384,
    )


if __name__ == "__main__":
    main()
