"""A small, fast HTTP/1.1 load generator: keep-alive connections on uvloop, prebuilt requests.

    python -m loadtests.loadgen SPEC.json [RESULT.json]   # the result as JSON (default stdout)

It runs in its own process so it never shares an event loop (or a core's time slices, as far
as the OS allows) with the server it measures. Requests are rendered to bytes once, before the
clock starts, and responses are parsed only as far as status line, Content-Length and, for
errors, the contract's error code; so one core of it outpaces a Python server on another.

Two modes, both with a fixed number of connections:
- closed loop (`rate` null): each connection sends its next request as soon as the previous
  answer arrived; this measures a ceiling (req/s) and the latency at that ceiling;
- open loop (`rate` R): requests are due at a fixed R per second whatever the server does, and
  latency counts from when a request was *due*, so a queue building up is measured instead of
  hidden (no coordinated omission). This gives latency against offered load.

The spec (JSON): host, port, connections, seconds, warmup, rate, requests (a list of
[method, path, headers, body-or-null], sent round robin from `offset`), raw (also return
every latency, so rounds can be merged into exact percentiles).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from loadtests.figures import percentile

ERROR_CODE = re.compile(rb'"code"\s*:\s*"([A-Z_]+)"')
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def render(method: str, path: str, headers: dict[str, str], body: bytes | None, host: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + (body or b"")


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        match = CONTENT_LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("the server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.lost is not None or self.transport is None:
            raise ConnectionError("connection lost")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def outcome_of(status: int, body: bytes) -> str:
    """`201`, or `409 SEAT_TAKEN`: the status, and the contract's error code when there is one."""
    if status < 400:
        return str(status)
    match = ERROR_CODE.search(body)
    return f"{status} {match.group(1).decode()}" if match else str(status)


@dataclass
class Run:
    measuring: bool = False
    stopping: bool = False
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0  # the generator's own CPU time during the window
    sent: int = 0  # requests sent, warm-up included (the next run's offset)

    def record(self, status: int, body: bytes, seconds: float) -> None:
        """Count an answer of the measured window: its outcome and its latency."""
        self.outcomes[outcome_of(status, body)] += 1
        self.latencies.append(seconds)


async def _open(host: str, port: int, count: int) -> list[_Connection]:
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(count):
        _, protocol = await loop.create_connection(_Connection, host, port)
        connections.append(protocol)
    return connections


async def closed_loop(spec: dict[str, Any], requests: list[bytes]) -> tuple[Run, float]:
    run = Run()
    order = itertools.cycle(range(len(requests)))
    for _ in range(spec.get("offset", 0) % len(requests)):
        next(order)
    connections = await _open(spec["host"], spec["port"], spec["connections"])

    async def worker(connection: _Connection) -> None:
        clock = time.perf_counter
        while not run.stopping:
            raw = requests[next(order)]
            run.sent += 1
            started = clock()
            try:
                status, body = await connection.send(raw)
            except ConnectionError as error:
                run.errors[type(error).__name__] += 1
                return
            if run.measuring:
                run.record(status, body, clock() - started)

    tasks = [asyncio.create_task(worker(c)) for c in connections]
    await asyncio.sleep(spec["warmup"])
    run.measuring = True
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(spec["seconds"])
    run.measuring = False
    elapsed = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu
    run.stopping = True
    await asyncio.wait(tasks, timeout=30)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return run, elapsed


async def open_loop(spec: dict[str, Any], requests: list[bytes]) -> tuple[Run, float]:
    """Requests due at `rate` per second, latency from the due time to the answer.

    As wrk2 does it: each connection owns every n-th due time (n connections) and sends its
    request then, or as soon as its previous answer is back if that is later (the lateness
    counts in the latency). No shared queue and no timer per request beyond the connection's
    own sleep: a generator that spent a core scheduling would take it from the server on this
    2-core machine and measure its own lag.
    """
    run = Run()
    rate = float(spec["rate"])
    connections = await _open(spec["host"], spec["port"], spec["connections"])
    clock = time.perf_counter
    begin = clock()
    window_start = begin + spec["warmup"]
    window_end = window_start + spec["seconds"]
    offset = spec.get("offset", 0)
    # Counted by index, not by comparing float instants: the window holds exactly its share.
    first = round(spec["warmup"] * rate)
    total = round((spec["warmup"] + spec["seconds"]) * rate)
    stride = len(connections)

    async def worker(index: int, connection: _Connection) -> None:
        for n in range(index, total, stride):
            due = begin + n / rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status, body = await connection.send(requests[(offset + n) % len(requests)])
            except ConnectionError as error:
                run.errors[type(error).__name__] += 1
                return
            if n >= first:
                run.record(status, body, clock() - due)

    async def measure_cpu() -> float:
        await asyncio.sleep(max(0.0, window_start - clock()))
        started = time.process_time()
        await asyncio.sleep(max(0.0, window_end - clock()))
        return time.process_time() - started

    cpu = asyncio.ensure_future(measure_cpu())
    try:
        # What was due in the window may finish late (bounded), then stop.
        await asyncio.wait_for(
            asyncio.gather(*(worker(k, c) for k, c in enumerate(connections))),
            timeout=window_end - begin + 30,
        )
    except TimeoutError:
        pass
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    run.cpu_seconds = await cpu
    run.sent = total
    return run, window_end - window_start


def summarize(run: Run, elapsed: float, spec: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(run.latencies)
    count = len(latencies)
    return {
        "mode": "open" if spec.get("rate") else "closed",
        "offered_rate": spec.get("rate"),
        "connections": spec["connections"],
        "seconds": elapsed,
        "requests": count,
        "sent": run.sent,
        "rate": count / elapsed if elapsed > 0 else 0.0,
        "outcomes": dict(run.outcomes),
        "errors": dict(run.errors),
        "latency_ms": {
            name: percentile(latencies, q) * 1000
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))
        }
        | {"max": latencies[-1] * 1000 if latencies else float("nan")},
        "generator_cpu_share": run.cpu_seconds / elapsed if elapsed > 0 else 0.0,
    } | ({"raw_ms": [round(x * 1000, 3) for x in latencies]} if spec.get("raw") else {})


async def main_async(spec: dict[str, Any]) -> dict[str, Any]:
    host = f"{spec['host']}:{spec['port']}"
    requests = [
        render(method, path, headers, body.encode() if body is not None else None, host)
        for method, path, headers, body in spec["requests"]
    ]
    if spec.get("rate"):
        run, elapsed = await open_loop(spec, requests)
    else:
        run, elapsed = await closed_loop(spec, requests)
    return summarize(run, elapsed, spec)


def run_apart(spec: dict[str, Any], directory: Path, name: str) -> dict[str, Any]:
    """Run the generator on `spec` in a process of its own (spec and result as files named
    after `name` in `directory`); its result. Raises RuntimeError if it fails."""
    path, out = directory / f"spec-{name}.json", directory / f"result-{name}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.loadgen", str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + spec.get("warmup", 0.0) + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    result = json.dumps(uvloop.run(main_async(spec)))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as file:
            file.write(result)
    else:
        print(result)


if __name__ == "__main__":
    main()
