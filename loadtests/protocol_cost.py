"""CPU per request of the guarded HTTP protocol (web.protocol) against uvicorn's own.

    python -m loadtests.protocol_cost [--requests 20000] [--rounds 3]

Both protocols parse the same keep-alive POST, fed in one piece, and answer it from a trivial
app into a transport that only counts writes, on uvloop in this process: what differs is the
protocol's own work. CPU time, so a busy machine moves it less than wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from web.limits import Limits
from web.protocol import Guard, protocol_class
from web.settings import Settings

BODY = b'{"concertId":"aurora-2027","date":"2027-01-15","seat":7}'
REQUEST = (
    b"POST /api/reservations HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer 1.abc.def\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
WARM_UP = 500


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


class CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol


async def microseconds_per_request(protocol: type[HttpToolsProtocol], requests: int) -> float:
    config = uvicorn.Config(app, http=protocol, log_level="warning", access_log=False)
    config.load()
    connection = protocol(config=config, server_state=ServerState(), app_state={})
    transport = CountingTransport()
    transport.protocol = connection
    connection.connection_made(transport)
    for _ in range(WARM_UP):
        connection.data_received(REQUEST)
        await asyncio.sleep(0)
    started = time.process_time()
    for _ in range(requests):
        connection.data_received(REQUEST)
        await asyncio.sleep(0)  # the answer's task runs
    elapsed = time.process_time() - started
    connection.connection_lost(None)  # its timers go
    assert transport.writes == 2 * (WARM_UP + requests), "every request answered"
    return elapsed / requests * 1e6


async def compare(requests: int, rounds: int) -> None:
    limits = Limits.for_process(Settings.from_env({}), open_files=20_000)
    guarded = protocol_class(Guard(limits))
    for _ in range(rounds):
        stock = await microseconds_per_request(HttpToolsProtocol, requests)
        ours = await microseconds_per_request(guarded, requests)
        print(f"uvicorn {stock:.2f} µs/request, guarded {ours:.2f} µs/request: +{ours - stock:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(compare(args.requests, args.rounds))


if __name__ == "__main__":
    main()
