"""The benchmark's HTTP generator against a real server: it sends what it is asked, at the
rate it is asked, and accounts for every answer. Nothing here is timed beyond counting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

from loadtests.loadgen import main_async
from tests.api.server import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("loadgen-server"), {}) as running:
        yield running


def spec(server: Server, **changes: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "connections": 8,
        "seconds": 1.0,
        "warmup": 0.2,
        "rate": None,
        "offset": 0,
        "raw": True,
        "requests": [["GET", "/healthz", {}, None], ["GET", "/nowhere", {}, None]],
    } | changes


def test_the_open_loop_sends_every_due_request_and_hears_every_answer(server: Server) -> None:
    result = uvloop.run(main_async(spec(server, rate=400)))
    # 400/s for 1.2 s: 480 due, the 400 of the measured second counted.
    assert result["sent"] == 480
    assert result["requests"] == 400
    assert result["outcomes"] == {"200": 200, "404 NOT_FOUND": 200}
    assert result["errors"] == {}
    assert len(result["raw_ms"]) == 400


def test_the_closed_loop_keeps_every_connection_busy(server: Server) -> None:
    result = uvloop.run(main_async(spec(server)))
    assert result["requests"] > 0
    assert set(result["outcomes"]) == {"200", "404 NOT_FOUND"}
    assert result["errors"] == {}
