"""One process of waiting websocket clients for bench_ws: join, connect, record every message.

    python -m loadtests.ws_clients SPEC.json RESULT.json

Spec (JSON): base_url, ws_url, users (ids to join, in order), ready_file, stop_file. The
process joins its users over HTTP, opens one websocket per token (as a browser tab does),
writes `ready_file` once every connection is open, records the wall-clock arrival time of every
message, and when `stop_file` appears closes everything and writes RESULT.json:
{"connected", "failed", "messages": [[client, time, type, rank or activeUntil]], "cpu_seconds"}.
Wall-clock times, because the server's admission instant comes back in `activeUntil` (it is
`at + ACTIVE_TTL`) and both sides read the same host clock.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop
from websockets.asyncio.client import ClientConnection, connect

JOIN_CONCURRENCY = 32
CONNECT_CONCURRENCY = 64
STOP_POLL = 0.2


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: a few thousand sockets per process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def join(base_url: str, users: list[str]) -> list[str]:
    tokens: list[str] = [""] * len(users)
    limiter = asyncio.Semaphore(JOIN_CONCURRENCY)
    limits = httpx.Limits(max_connections=JOIN_CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(index: int) -> None:
            async with limiter:
                response = await client.post(
                    f"{base_url}/api/queue/tokens", json={"userId": users[index]}
                )
                response.raise_for_status()
                tokens[index] = response.json()["token"]

        await asyncio.gather(*(one(i) for i in range(len(users))))
    return tokens


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[int, float, str, Any]] = []
        self.connected = 0
        self.failed = 0
        self.closed_early = 0

    async def listen(self, client: int, websocket: ClientConnection) -> None:
        clock = time.time
        try:
            async for raw in websocket:
                arrived = clock()
                message = json.loads(raw)
                kind = message.get("type", "")
                value = message.get("rank") if kind == "queue.rank" else message.get("activeUntil")
                self.messages.append((client, arrived, kind, value))
        except Exception:
            self.closed_early += 1


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    tokens = await join(spec["base_url"], spec["users"])
    recorder = Recorder()
    sockets: list[ClientConnection] = []
    listeners: list[asyncio.Task[None]] = []
    limiter = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(client: int, token: str) -> None:
        async with limiter:
            try:
                websocket = await connect(
                    f"{spec['ws_url']}?token={token}", open_timeout=60, max_queue=None
                )
            except Exception:
                recorder.failed += 1
                return
        recorder.connected += 1
        sockets.append(websocket)
        listeners.append(asyncio.create_task(recorder.listen(client, websocket)))

    await asyncio.gather(*(open_one(i, t) for i, t in enumerate(tokens)))
    Path(spec["ready_file"]).write_text(str(recorder.connected))
    stop = Path(spec["stop_file"])
    while not stop.exists():
        await asyncio.sleep(STOP_POLL)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "connected": recorder.connected,
        "failed": recorder.failed,
        "closed_early": recorder.closed_early,
        "messages": recorder.messages,
        "cpu_seconds": time.process_time(),
    }


def main() -> None:
    raise_fd_limit()
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = uvloop.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
