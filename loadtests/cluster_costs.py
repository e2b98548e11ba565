"""What each operation costs a cluster, by kind of process: the figures docs/scaling.md works from.

    python -m loadtests.cluster_costs            # about three minutes; PostgreSQL and Redis

A cluster of 2 shard hosts and 2 gateways (`serve --cluster`, Ray on this machine) on a fresh
PostgreSQL schema, admitting 1,000 buyers every 0.2 s so that nobody waits long. Each phase
keeps it busy (256 connections) with one kind of request for a few seconds, and the CPU time of
every process of the cluster is summed by kind (gateways, shard hosts, the rest: the launcher
and Ray's own) over the phase:
- joins: `POST /api/queue/tokens`, every one a new buyer (one actor: the waiting room);
- polls: `GET /api/queue/tokens/me` by admitted buyers (the gateway's replica; no host);
- holds: `POST /api/reservations` spread over every seat of many dates, each a new hold;
- charges: `POST /api/balance/charge`, each with an Idempotency-Key of its own.
A payment is not measured here: a load of payments needs holds and balances made for it, one
per buyer; docs/scaling.md counts its actor commands instead.
Prints CPU milliseconds per operation by kind (beyond the cluster's upkeep, measured idle
first) and the rate reached; writes loadtests/results/cluster-costs.json. The load generator,
PostgreSQL and Redis are not counted (bench_cluster's single-process figures leave them out
alike).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil

from loadtests.bench_cluster import CLUSTER_START, DEFAULT_DATABASE, missing_services
from loadtests.bench_http import (
    SERVER_ENV,
    Request,
    loads_of,
    on_sale,
)
from loadtests.databases import fresh_postgres_schema
from loadtests.figures import RESULTS
from loadtests.loadgen import run_apart
from loadtests.server_process import ServerProcess
from loadtests.service_client import DateOnSale, Member

KINDS = ("gateways", "hosts", "rest")
CONNECTIONS = 256


def kind_of(process: psutil.Process) -> str:
    line = " ".join(process.cmdline())
    if "cluster.gateway" in line:
        return "gateways"
    if "ShardHost" in line:
        return "hosts"
    return "rest"


def cpu_by_kind(root: psutil.Process) -> dict[str, float]:
    """CPU seconds used so far by every process of the tree, by kind (those still running)."""
    totals = dict.fromkeys(KINDS, 0.0)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            totals[kind_of(process)] += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return totals


@dataclass
class Phase:
    name: str
    operations: int
    seconds: float
    cpu: dict[str, float]

    def row(self) -> dict[str, Any]:
        per = {k: 1000 * v / self.operations for k, v in self.cpu.items()}
        return {
            "phase": self.name,
            "operations": self.operations,
            "rate": self.operations / self.seconds,
            "cpu_ms_per_operation": per,
            "cpu_ms_total": sum(per.values()),
        }


@contextmanager
def measured(root: psutil.Process) -> Iterator[Callable[[], dict[str, float]]]:
    before = cpu_by_kind(root)
    after: dict[str, float] = {}
    yield lambda: {k: after[k] - before[k] for k in KINDS}
    after.update(cpu_by_kind(root))


def closed_loop(server: ServerProcess, requests: list[Request], seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "host": "127.0.0.1",
            "port": server.port,
            "connections": CONNECTIONS,
            "seconds": seconds,
            "warmup": 0.0,
            "rate": None,
            "requests": requests,
        }
        return run_apart(spec, Path(tmp), "phase")


def join_requests(count: int) -> list[Request]:
    headers = {"Content-Type": "application/json"}
    return [
        ("POST", "/api/queue/tokens", headers, json.dumps({"userId": f"joiner-{n:07d}"}))
        for n in range(count)
    ]


def charge_requests(members: list[Member]) -> list[Request]:
    """Charges of 1, each with a key of its own (so each is a new charge)."""
    return [
        (
            "POST",
            "/api/balance/charge",
            {**m.headers, "Content-Type": "application/json", "Idempotency-Key": f"c-{n}"},
            json.dumps({"amount": 1}),
        )
        for n in range(200_000)
        for m in (members[n % len(members)],)
    ]


def poll_requests(members: list[Member]) -> list[Request]:
    return [("GET", "/api/queue/tokens/me", m.headers, None) for m in members]


def run_phase(
    name: str,
    server: ServerProcess,
    root: psutil.Process,
    requests: list[Request],
    seconds: float,
    *,
    fresh: bool = True,
) -> Phase:
    """`requests` round robin for `seconds`; `fresh`: each must be sent once at most."""
    with measured(root) as used:
        result = closed_loop(server, requests, seconds)
    if fresh and result["sent"] > len(requests):
        raise RuntimeError(f"{name}: the load came round to requests already made")
    print(f"{name}: {result['requests'] / result['seconds']:,.0f}/s {result['outcomes']}")
    return Phase(name, result["requests"], result["seconds"], used())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    args = parser.parse_args()
    missing = missing_services(args.database_url)
    if missing:
        print(f"cluster_costs: not run: {missing}")
        return
    env = {
        **SERVER_ENV,
        "CLUSTER": "ray",
        "CLUSTER_SHARDS": "2",
        "CLUSTER_GATEWAYS": "2",
        "ADMIT_BATCH": "1000",
        "ADMIT_INTERVAL_SECONDS": "0.2",
    }
    phases: list[Phase] = []
    with (
        tempfile.TemporaryDirectory(prefix="cluster-costs-") as tmp,
        fresh_postgres_schema(args.database_url) as url,
        ServerProcess("web", Path(tmp), env, url, start_timeout=CLUSTER_START) as server,
    ):
        root = psutil.Process(server.process.pid if server.process else 0)
        dates_needed = int(args.seconds * 30_000 / 50) + 1
        spread, _, members = anyio.run(_prepare, server.url, dates_needed)
        with measured(root) as used:  # the cluster's own upkeep, charged to no operation
            time.sleep(args.seconds)
        idle = {k: v / args.seconds for k, v in used().items()}
        holds = loads_of(spread, spread[0], members)["spread"]
        phases.append(run_phase("holds", server, root, holds, args.seconds))
        phases.append(run_phase("charges", server, root, charge_requests(members), args.seconds))
        polls = poll_requests(members)
        phases.append(run_phase("polls", server, root, polls, args.seconds, fresh=False))
        # Last: the joiners wait in the queue, ahead of anyone who joins after them.
        phases.append(run_phase("joins", server, root, join_requests(400_000), args.seconds))
    for phase in phases:  # what the operations cost beyond the upkeep
        phase.cpu = {k: max(0.0, v - idle[k] * phase.seconds) for k, v in phase.cpu.items()}
    print(f"upkeep while idle: {sum(idle.values()):.3f} cores " + str(idle))
    rows = [phase.row() for phase in phases]
    print("\n| operation | rate reached | CPU ms: gateways | hosts | rest | total |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        per = row["cpu_ms_per_operation"]
        print(
            f"| {row['phase']} | {row['rate']:,.0f}/s | {per['gateways']:.3f} | "
            f"{per['hosts']:.3f} | {per['rest']:.3f} | {row['cpu_ms_total']:.3f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    report = {"phases": rows, "idle_cores": idle, "connections": CONNECTIONS}
    (RESULTS / "cluster-costs.json").write_text(json.dumps(report, indent=2) + "\n")


async def _prepare(url: str, dates: int) -> tuple[list[DateOnSale], DateOnSale, list[Member]]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await on_sale(client, url, dates)


if __name__ == "__main__":
    main()
