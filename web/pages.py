"""What a browser gets where an API client gets JSON: the HTML page of a 404.

A request that prefers `text/html` (a browser's navigation sends `Accept: text/html,...`)
and finds no route or file gets a small page linking to the buyer's page and the dashboard;
an API client (no Accept, `*/*` or `application/json`) gets the error model's JSON.
"""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not found · concert-queue</title><link rel="stylesheet" href="/static/css/app.css"></head>
<body><main class="card notfound"><h1>Page not found</h1>
<p>There is nothing at <code>{path}</code>.</p>
<p><a href="/">Buy tickets</a> · <a href="/admin">Operator's dashboard</a></p></main></body>
</html>
"""


def wants_html(scope: Scope) -> bool:
    """Whether the client asked for HTML before JSON (a browser navigating)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"accept":
            accept = value.decode("latin-1").lower()
            page = accept.find("text/html")
            data = accept.find("application/json")
            return page >= 0 and (data < 0 or page < data)
    return False


def not_found_page(path: str) -> Response:
    return HTMLResponse(NOT_FOUND_PAGE.format(path=html.escape(path)), status_code=404)
