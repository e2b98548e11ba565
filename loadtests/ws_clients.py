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
import base64
import json
import os
import resource
import struct
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvloop

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

    def record(self, client: int, arrived: float, payload: bytes) -> None:
        message = json.loads(payload)
        kind = message.get("type", "")
        value = message.get("rank") if kind == "queue.rank" else message.get("activeUntil")
        self.messages.append((client, arrived, kind, value))


class _Client(asyncio.Protocol):
    """One websocket client, framing by hand (RFC 6455, the few frames a server sends here).

    Thousands of these share a process and two cores with the server: a full client library
    parsed each frame through several layers of Python and tasks, and at each admission
    batch the clients, not the server, were what held the rank updates back.
    """

    def __init__(self, client: int, recorder: Recorder, path: str, host: str) -> None:
        self.client = client
        self.recorder = recorder
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.fragments = bytearray()
        self.stopping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]  # a stream transport
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.buffer += data
        if not self.opened.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.opened.set_result(self.buffer.startswith(b"HTTP/1.1 101"))
            del self.buffer[: end + 4]
        while (frame := self._next_frame()) is not None:
            fin, opcode, payload = frame
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
            elif opcode == 0x8:  # close
                self._send(0x8, payload[:2])
                assert self.transport is not None
                self.transport.close()
            elif opcode in (0x1, 0x0):  # text, or a continuation of one
                self.fragments += payload
                if fin:
                    self.recorder.record(self.client, arrived, bytes(self.fragments))
                    self.fragments.clear()

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
        if len(buffer) < offset + length:
            return None
        frame = (bool(buffer[0] & 0x80), buffer[0] & 0x0F, bytes(buffer[offset : offset + length]))
        del buffer[: offset + length]
        return frame

    def _send(self, opcode: int, payload: bytes) -> None:
        """A masked frame of a short control payload (the client must mask)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def close(self) -> None:
        self.stopping = True
        self._send(0x8, struct.pack("!H", 1000))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)
        elif not self.stopping:
            self.recorder.closed_early += 1


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    tokens = await join(spec["base_url"], spec["users"])
    recorder = Recorder()
    clients: list[_Client] = []
    limiter = asyncio.Semaphore(CONNECT_CONCURRENCY)
    url = urlsplit(spec["ws_url"])
    loop = asyncio.get_running_loop()

    async def open_one(client: int, token: str) -> None:
        async with limiter:
            protocol = _Client(client, recorder, f"{url.path}?token={token}", url.netloc)
            try:
                await loop.create_connection(lambda: protocol, url.hostname, url.port)
                opened = await asyncio.wait_for(protocol.opened, timeout=60)
            except (OSError, TimeoutError):
                opened = False
            if not opened:
                recorder.failed += 1
                return
        recorder.connected += 1
        clients.append(protocol)

    await asyncio.gather(*(open_one(i, t) for i, t in enumerate(tokens)))
    Path(spec["ready_file"]).write_text(str(recorder.connected))
    stop = Path(spec["stop_file"])
    while not stop.exists():
        await asyncio.sleep(STOP_POLL)
    for protocol in clients:
        protocol.close()
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
