"""Service routes: liveness, readiness, the OpenAPI document and the browser pages.

`/openapi.json` is built by the function `set_openapi` is given, for the live catalog's sample
(web/examples.py): once per sample, kept while the sample stays the same.

`/` and `/admin` serve the browser client's `index.html` and `admin.html` from the static
directory (its other files are under `/static/`); a plain 404 page stands in while a file is
missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, HTMLResponse, Response

from web.endpoints import Call, Endpoint, Out, json_response
from web.examples import PLACEHOLDER, Sample, sample_of
from web.runtime import Runtime
from web.schemas import HealthOut

# The document's own shape, as far as a client relies on it (the OpenAPI 3.1 meta-schema is
# not inlined: it is larger than the document).
OPENAPI_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string"},
        "info": {"type": "object"},
        "paths": {"type": "object"},
        "components": {"type": "object"},
    },
}
MISSING_PAGE = "<!doctype html><title>Not found</title><h1>404</h1><p>{name} is not built yet.</p>"


class ServiceRoutes:
    def __init__(self, runtime: Runtime, static_dir: Path) -> None:
        self.runtime = runtime
        self.static_dir = static_dir
        self._build: Callable[[Sample], dict[str, Any]] = lambda sample: {}
        self._built: tuple[Sample, bytes] | None = None

    def set_openapi(self, build: Callable[[Sample], dict[str, Any]]) -> None:
        self._build = build
        self._built = None

    def openapi_document(self) -> bytes:
        """The document for the sample of the catalog now (the placeholder's until ready)."""
        runtime = self.runtime
        sample = sample_of(runtime.running_engine) if runtime.ready else PLACEHOLDER
        built = self._built
        if built is None or built[0] != sample:
            built = sample, json.dumps(self._build(sample), separators=(",", ":")).encode()
            self._built = built
        return built[1]

    async def healthz(self, call: Call) -> Response:
        return json_response(HealthOut(status="ok"))

    async def readyz(self, call: Call) -> Response:
        runtime = self.runtime
        if runtime.ready:
            return json_response(HealthOut(status="ready"))
        journal_error = runtime.journal_error
        health = (
            HealthOut(status="draining")
            if runtime.draining
            else HealthOut(status="unavailable", error=journal_error)
            if journal_error is not None and runtime.running_engine is not None
            else HealthOut(status="starting", error=runtime.startup_error)
        )
        return json_response(health, 503, headers={"Retry-After": "1"})

    async def openapi(self, call: Call) -> Response:
        return Response(self.openapi_document(), media_type="application/json")

    async def index_page(self, call: Call) -> Response:
        return self._page("index.html")

    async def admin_page(self, call: Call) -> Response:
        return self._page("admin.html")

    def _page(self, name: str) -> Response:
        path = self.static_dir / name
        if not path.is_file():
            return HTMLResponse(MISSING_PAGE.format(name=name), status_code=404)
        return FileResponse(path, media_type="text/html")

    def endpoints(self) -> list[Endpoint]:
        html = Out(media_type="text/html", description="the page")
        return [
            Endpoint(
                "GET", "/healthz", self.healthz, "Liveness: 200 while the process runs",
                auth="none", responses={200: Out(HealthOut)}, tag="service", engine=False,
            ),
            Endpoint(
                "GET", "/readyz", self.readyz,
                "Readiness: 200 once recovery has finished, 503 before and while draining",
                auth="none",
                responses={
                    200: Out(HealthOut),
                    503: Out(HealthOut, description="starting (with the last start-up "
                             "error, if any), unavailable (the journal cannot commit: the "
                             "database's error) or draining"),
                },
                tag="service", engine=False,
            ),
            Endpoint(
                "GET", "/openapi.json", self.openapi, "This document",
                auth="none", tag="service", engine=False,
                responses={200: Out(description="OpenAPI 3.1", schema=OPENAPI_SCHEMA)},
            ),
            Endpoint(
                "GET", "/", self.index_page, "The buyer's page", auth="none",
                responses={200: html}, tag="pages", engine=False,
            ),
            Endpoint(
                "GET", "/admin", self.admin_page, "The admin dashboard", auth="none",
                responses={200: html}, tag="pages", engine=False,
            ),
        ]  # fmt: skip
