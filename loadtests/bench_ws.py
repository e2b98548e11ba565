"""The websocket fan-out benchmark (issue #4): 10,000 waiting clients and admission batches.

    python -m loadtests.bench_ws            # 10,000 clients in 4 processes, 8 batches
    python -m loadtests.bench_ws --quick    # 1,000 clients, 3 batches

One server (`concert-queue serve` on a fresh SQLite file, ADMIT_BATCH 100 every 2 s) and a few
client processes (`loadtests.ws_clients`), each joining its users over HTTP and holding one
websocket per token. The queue is paused while they connect, then resumed; every admission
batch then
- sends `queue.admitted` to the 100 clients it admits: latency from the admission instant (the
  server's `activeUntil - ACTIVE_TTL`) to arrival, target within 200 ms;
- changes the rank of every client still waiting: latency from the same instant to the first
  `queue.rank` after it, target every one within 1 s (ranks are coalesced to one pass a second).

Writes loadtests/results/ws.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtests.figures import Figure, percentile, publish
from loadtests.server_process import ServerProcess
from loadtests.service_client import admin_headers
from loadtests.ws_clients import raise_fd_limit

ADMIN_TOKEN = "bench-ws-admin-token"
BATCH = 100
INTERVAL = 2.0
ACTIVE_TTL = 3600.0
RANK_TARGET = 1.0
ADMITTED_TARGET = 0.2

SERVER_ENV = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "ADMIT_BATCH": str(BATCH),
    "ADMIT_INTERVAL_SECONDS": str(INTERVAL),
    "ACTIVE_TTL_SECONDS": str(ACTIVE_TTL),
}


def instant_of(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class FanOut:
    """What the clients saw, organised by admission batch."""

    batches: list[float] = field(default_factory=list)  # admission instants, ascending
    admitted_at: dict[int, float] = field(default_factory=dict)  # client -> its batch instant
    admitted_latency: list[float] = field(default_factory=list)
    ranks: dict[int, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    rank_latency: list[float] = field(default_factory=list)
    rank_missing: int = 0
    rank_wrong: int = 0

    @classmethod
    def of(cls, messages: list[list[Any]]) -> FanOut:
        seen = cls()
        instants = set()
        for client, arrived, kind, value in messages:
            if kind == "queue.admitted" and value:
                at = round(instant_of(value) - ACTIVE_TTL, 3)
                instants.add(at)
                seen.admitted_at[client] = at
                seen.admitted_latency.append(arrived - at)
            elif kind == "queue.rank":
                seen.ranks[client].append((arrived, value))
        seen.batches = sorted(instants)
        for series in seen.ranks.values():
            series.sort()
        seen._match_ranks()
        return seen

    def _match_ranks(self) -> None:
        """For each batch and each client still waiting after it: its first rank after the
        batch, which must be its first rank minus the users admitted since (all batches)."""
        for index, at in enumerate(self.batches):
            until = self.batches[index + 1] if index + 1 < len(self.batches) else float("inf")
            admitted_so_far = BATCH * (index + 1)
            for client, series in self.ranks.items():
                mine = self.admitted_at.get(client)
                if mine is not None and mine <= at:
                    continue
                times = [t for t, _ in series]
                position = bisect.bisect_right(times, at)
                if position == len(series) or series[position][0] >= until:
                    self.rank_missing += 1
                    continue
                arrived, rank = series[position]
                self.rank_latency.append(arrived - at)
                if rank != series[0][1] - admitted_so_far:
                    self.rank_wrong += 1


def start_clients(
    server: ServerProcess, directory: Path, clients: int, processes: int
) -> list[tuple[subprocess.Popen[bytes], Path, Path]]:
    started = []
    per_process = -(-clients // processes)
    for number in range(processes):
        users = [
            f"ws-{number}-{i}" for i in range(min(per_process, clients - number * per_process))
        ]
        spec = {
            "base_url": server.url,
            "ws_url": f"ws://127.0.0.1:{server.port}/ws",
            "users": users,
            "ready_file": str(directory / f"ready-{number}"),
            "stop_file": str(directory / "stop"),
        }
        spec_path = directory / f"clients-{number}.json"
        spec_path.write_text(json.dumps(spec))
        result = directory / f"clients-{number}.result.json"
        log = (directory / f"clients-{number}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "loadtests.ws_clients", str(spec_path), str(result)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((process, directory / f"ready-{number}", result))
    return started


def wait_ready(started: list[tuple[subprocess.Popen[bytes], Path, Path]], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, ready, _ in started:
            if process.poll() is not None:
                log = ready.with_name(ready.name.replace("ready-", "clients-") + ".log")
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"a client process exited early ({process.returncode}):\n{tail}")
        if all(ready.exists() for _, ready, _ in started):
            return sum(int(ready.read_text()) for _, ready, _ in started)
        time.sleep(0.2)
    raise TimeoutError("the clients did not connect in time")


def admin(server: ServerProcess, method: str, path: str) -> Any:
    response = httpx.request(
        method, server.url + path, headers=admin_headers(ADMIN_TOKEN), timeout=60
    )
    response.raise_for_status()
    return response.json()


def run(args: argparse.Namespace) -> tuple[list[Figure], dict[str, Any]]:
    raise_fd_limit()  # the server inherits it: it holds one socket per client
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        directory = Path(tmp)
        server = ServerProcess("web", directory, SERVER_ENV)
        started: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        with server:
            try:
                admin(server, "POST", "/admin/queue/pause")
                rss_before = server.rss_bytes()
                print(f"connecting {args.clients:,} clients in {args.processes} processes ...")
                started = start_clients(server, directory, args.clients, args.processes)
                connected = wait_ready(started, timeout=600)
                rss_after = server.rss_bytes()
                hub = admin(server, "GET", "/admin/actors")["websockets"]
                print(f"{connected:,} connected (server counts {hub:,}); resuming the queue ...")
                cpu = server.cpu_seconds()
                admin(server, "POST", "/admin/queue/resume")
                measured = args.batches * INTERVAL + 1.5
                time.sleep(measured)
                server_cpu = server.cpu_seconds() - cpu
                admin(server, "POST", "/admin/queue/pause")
            finally:
                (directory / "stop").touch()
                for process, _, _ in started:
                    try:
                        process.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        process.kill()
        results = [json.loads(path.read_text()) for _, _, path in started]
    messages = [m for r in results for m in _renumbered(r, results)]
    seen = FanOut.of(messages)
    details = {
        "clients": args.clients,
        "processes": args.processes,
        "connected": sum(r["connected"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "closed_early": sum(r["closed_early"] for r in results),
        "server_websockets": hub,
        "batches": len(seen.batches),
        "admit_batch": BATCH,
        "admit_interval_seconds": INTERVAL,
        "server_cpu_share": server_cpu / measured,
        "server_rss_per_connection_bytes": (rss_after - rss_before) / max(1, connected),
        "client_cpu_seconds": [r["cpu_seconds"] for r in results],
        "rank_deliveries": len(seen.rank_latency),
        "rank_missing": seen.rank_missing,
        "rank_wrong": seen.rank_wrong,
        "admitted": len(seen.admitted_latency),
    }
    return figures_of(seen, details), details


def _renumbered(result: dict[str, Any], results: list[dict[str, Any]]) -> list[list[Any]]:
    """Client numbers are per process: make them unique across processes."""
    base = sum(r["connected"] + r["failed"] for r in results[: results.index(result)])
    return [[base + c, t, kind, value] for c, t, kind, value in result["messages"]]


def figures_of(seen: FanOut, details: dict[str, Any]) -> list[Figure]:
    ranks = sorted(seen.rank_latency)
    admitted = sorted(seen.admitted_latency)
    expected = len(ranks) + seen.rank_missing
    on_time = sum(1 for x in ranks if x <= RANK_TARGET)
    admitted_on_time = sum(1 for x in admitted if x <= ADMITTED_TARGET)
    all_connected = details["connected"] == details["clients"]
    ms = 1000
    return [
        Figure(
            "waiting websocket clients connected",
            details["connected"],
            "clients",
            f"{details['clients']:,}",
            all_connected,
            f"{details['processes']} client processes; server holds "
            f"{details['server_rss_per_connection_bytes'] / 1024:.0f} KiB RSS per connection",
        ),
        Figure(
            "admission batches observed",
            len(seen.batches),
            "batches",
            note=f"{BATCH} every {INTERVAL:g} s; "
            f"server CPU {100 * details['server_cpu_share']:.0f}%",
        ),
        Figure(
            "new rank within 1 s of a batch",
            100 * on_time / expected if expected else float("nan"),
            "% of deliveries",
            "100%",
            expected > 0 and on_time == expected,
            f"{on_time:,} of {expected:,} ({seen.rank_missing:,} missing, "
            f"{seen.rank_wrong:,} with an unexpected rank)",
        ),
        Figure(
            "rank latency p50",
            percentile(ranks, 0.5) * ms,
            "ms",
            note=f"p99 {percentile(ranks, 0.99) * ms:.0f} ms, "
            f"max {ranks[-1] * ms if ranks else 0:.0f} ms",
        ),
        Figure(
            "queue.admitted within 200 ms",
            100 * admitted_on_time / len(admitted) if admitted else float("nan"),
            "% of admitted",
            "100%",
            bool(admitted) and admitted_on_time == len(admitted),
            f"{admitted_on_time:,} of {len(admitted):,}",
        ),
        Figure(
            "queue.admitted latency p50",
            percentile(admitted, 0.5) * ms,
            "ms",
            note=f"p99 {percentile(admitted, 0.99) * ms:.0f} ms, "
            f"max {admitted[-1] * ms if admitted else 0:.0f} ms",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.processes, args.batches = 1000, 2, 3
    figures, details = run(args)
    publish("ws", figures, details, quick=args.quick)


if __name__ == "__main__":
    main()
