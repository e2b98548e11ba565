"""Instructions per request of the service's app, counted by callgrind: a measure that noise
cannot move, for comparing two versions of the hot path on a shared machine.

    python -m loadtests.count_instructions                  # bare, spread and hot, 1,000 each
    python -m loadtests.count_instructions --loads spread --requests 2000

Each load runs in its own process under `valgrind --tool=callgrind`: the real app beside the
bare endpoint (`loadtests.bench_server.SideBySide`), the real SQLite journal and its writer
thread on a temporary file, set up through the public and admin APIs, then 64 concurrent tasks
call the ASGIApp app with the benchmark's own requests (no sockets: uvicorn's share is the same
for every route). Counting is switched on only around the measured requests. Prints the
instructions per request of each thread; the event loop's thread is the first.

Instruction counts are not time (cache misses, the kernel and idle waiting are not in them),
but the same code counts the same to 0.1% from run to run, whatever the neighbours do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import uvloop
from starlette.types import ASGIApp, Message, Scope

from loadtests import bench_http
from loadtests.bench_server import SideBySide, bare_app
from web.app import create_app
from web.settings import Settings

CONCURRENCY = 64
WARMUP = 200
BASE = "http://service"


def asgi_request(request: bench_http.Request) -> tuple[Scope, bytes]:
    method, path, headers, body = request
    raw = body.encode() if body else b""
    pairs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    pairs.append((b"content-length", str(len(raw)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": pairs,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    return scope, raw


async def call(app: ASGIApp, scope: Scope, body: bytes) -> int:
    status = 0
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the request is whole; nothing more comes
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope), receive, send)
    return status


async def drive(app: ASGIApp, requests: list[tuple[Scope, bytes]], count: int) -> None:
    """`count` requests, taken in turn, by CONCURRENCY tasks."""
    taken = 0

    async def worker() -> None:
        nonlocal taken
        while taken < count:
            scope, body = requests[taken % len(requests)]
            taken += 1
            status = await call(app, scope, body)
            if status >= 500:
                raise RuntimeError(f"{scope['method']} {scope['path']} answered {status}")

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def lifespan(app: ASGIApp, stop: asyncio.Event, started: asyncio.Event) -> None:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)


async def measure_in_process(load: str, count: int, dates: int, directory: Path) -> None:
    os.environ.update(bench_http.SERVER_ENV | {"HOLD_SECONDS": "300"})
    settings = Settings.from_env().replace(database_url=f"sqlite:///{directory / 'count.db'}")
    app: ASGIApp = SideBySide(create_app(settings), bare_app())
    stop, started = asyncio.Event(), asyncio.Event()
    running = asyncio.ensure_future(lifespan(app, stop, started))
    await started.wait()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as client:
        while (await client.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.05)
        spread, hot, members = await bench_http.on_sale(client, BASE, dates)
    loads = bench_http.loads_of(spread, hot, members)
    requests = [asgi_request(r) for r in loads[load]]
    await drive(app, requests, WARMUP)
    callgrind_control("--instr=on")
    await drive(app, requests[WARMUP:], count)
    callgrind_control("--instr=off")
    stop.set()
    await running


def callgrind_control(switch: str) -> None:
    subprocess.run(["callgrind_control", switch, str(os.getpid())], check=True, capture_output=True)


def count(load: str, requests: int, dates: int) -> list[float]:
    """Thousands of instructions per request, by thread (the event loop's first)."""
    with tempfile.TemporaryDirectory(prefix="count-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "loadtests.count_instructions",
            "--child",
            load,
            "--requests",
            str(requests),
            "--dates",
            str(dates),
            "--directory",
            tmp,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{load}: {done.stderr[-3000:]}")
        per_thread = []
        for part in sorted(Path(tmp).glob("callgrind.out-*")):
            totals = re.search(r"^totals: (\d+)", part.read_text(), re.M)
            if totals and int(totals.group(1)) > 0:
                per_thread.append(int(totals.group(1)) / requests / 1000)
        return per_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loads", default="bare,spread,hot")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--dates", type=int, default=100, help="spread over this many dates")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        uvloop.run(measure_in_process(args.child, args.requests, args.dates, Path(args.directory)))
        return
    for load in args.loads.split(","):
        threads = count(load, args.requests, args.dates)
        figures = ", ".join(f"{k:,.1f}k" for k in threads)
        print(f"{load:7s} instructions per request by thread: {figures}", flush=True)


if __name__ == "__main__":
    main()
