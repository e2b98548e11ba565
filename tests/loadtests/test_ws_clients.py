"""The websocket fan-out benchmark's hand-framed clients against a real server: they connect,
hear what the server pushes and close cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from loadtests.ws_clients import run
from tests.api.server import Server, running_server

USERS = 5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {"ADMIT_BATCH": "2", "ADMIT_INTERVAL_SECONDS": "0.2"}
    with running_server(tmp_path / "server", env) as running:
        yield running


def test_every_client_connects_hears_its_queue_events_and_closes(
    server: Server, tmp_path: Path
) -> None:
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    spec: dict[str, Any] = {
        "base_url": server.url,
        "ws_url": server.ws_url,
        "users": [f"ws-client-{n}" for n in range(USERS)],
        "ready_file": str(ready),
        "stop_file": str(stop),
    }

    async def scenario() -> dict[str, Any]:
        clients = asyncio.ensure_future(run(spec))
        while not ready.exists():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # a few admission batches
        stop.write_text("")
        return await clients

    result = uvloop.run(scenario())
    assert result["connected"] == USERS
    assert result["failed"] == 0
    assert result["closed_early"] == 0
    messages = result["messages"]
    assert isinstance(messages, list)
    kinds = {kind for _, _, kind, _ in messages}
    assert "queue.admitted" in kinds
    assert {client for client, _, _, _ in messages} == set(range(USERS))
