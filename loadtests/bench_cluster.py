"""The cluster benchmark (issue #11): cluster mode beside the single process, one run.

    python -m loadtests.bench_cluster            # about six minutes
    python -m loadtests.bench_cluster --quick    # a short run to check the harness

Two deployments of the service on one PostgreSQL server, each on a database of its own and
both up for the whole run: the single process (`concert-queue serve`) and a cluster of 2 shard
hosts and 2 gateways (`concert-queue serve --cluster`, Ray on this machine). The same loads as
bench_http go to each in alternating rounds from a separate generator process, over
keep-alive connections (the cluster's through its shared port, so the kernel spreads them over
both gateways):
- `POST /api/reservations` spread over every seat of many dates, every request a new hold on
  either deployment (a run that would come round to held seats stops with an error);
- `POST /api/reservations` on one hot seat (SEAT_TAKEN but for the first);
each at 64 connections (bench_http's) and at 256. For each: holds/s, p50 and p99, and the CPU
seconds per 1,000 holds of every process of the deployment during its rounds (the single
process; the cluster's launcher, gateways, shard hosts and Ray's own processes). The targets:
the cluster's CPU per hold at most 2x the single process's, its holds/s at least 0.5x (on this
2-core machine the hop is a cost; more machines are where the gain is).

Why two concurrencies: at 64 connections a spread hold in the cluster waits for its host's
commit with the cluster's processes a third busy, so nearly every message between them wakes
a sleeping process, which costs more CPU than the message itself (on this virtual machine most
of all); an on-sale's thousands of buyers keep them busy, as 256 connections already do. The
single process is busy at both. Writes loadtests/results/cluster.json and prints a markdown
table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from loadtests.bench_http import SERVER_ENV, Request, loads_of, on_sale
from loadtests.databases import fresh_postgres_schema
from loadtests.figures import Figure, percentile, publish
from loadtests.loadgen import run_apart
from loadtests.server_process import ServerProcess

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLUSTER_START = 240.0  # seconds for Ray, the hosts and the gateways, on 2 busy cores
LOADS = ("spread", "hot")


@dataclass
class Rounds:
    """One load on one deployment, over rounds."""

    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, result: dict[str, Any], cpu: float) -> None:
        self.requests += result["requests"]
        self.seconds += result["seconds"]
        self.cpu_seconds += cpu
        self.latencies_ms += result["raw_ms"]
        for outcome, count in result["outcomes"].items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_thousand(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else float("nan")

    def latency(self, q: float) -> float:
        return percentile(sorted(self.latencies_ms), q)

    def mix(self) -> str:
        total = sum(self.outcomes.values()) or 1
        return ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in sorted(self.outcomes.items()))


class Deployment:
    """A started service and the loads prepared for it."""

    def __init__(self, name: str, server: ServerProcess, directory: Path) -> None:
        self.name = name
        self.server = server
        self.directory = directory
        self.loads: dict[str, list[Request]] = {}
        self.sent: dict[str, int] = {}
        self.rounds: dict[tuple[str, int], Rounds] = {}

    async def prepare(self, dates: int) -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            spread, hot, members = await on_sale(client, self.server.url, dates)
        self.loads = loads_of(spread, hot, members)

    def run(self, load: str, seconds: float, warmup: float, connections: int) -> None:
        offset = self.sent.get(load, 0)
        spec = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "connections": connections,
            "seconds": seconds,
            "warmup": warmup,
            "rate": None,
            "offset": offset,
            "raw": True,
            "requests": self.loads[load],
        }
        cpu = self.server.tree_cpu_seconds()
        result = run_apart(spec, self.directory, f"{self.name}-{load}-{connections}")
        used = self.server.tree_cpu_seconds() - cpu
        # The warmup's CPU is in `used` too: charge only the measured window's share.
        measured = result["seconds"] / (result["seconds"] + warmup)
        self.rounds.setdefault((load, connections), Rounds()).add(result, used * measured)
        self.sent[load] = offset + result["sent"]
        if load == "spread" and self.sent[load] > len(self.loads[load]):
            # Past the end the load would come round to seats already held: cheap answers,
            # more of them for the faster deployment, and the two no longer comparable.
            raise RuntimeError(
                f"the spread load ran out of free seats on {self.name} after "
                f"{self.sent[load]:,} requests: run it with more --dates"
            )


@contextlib.contextmanager
def deployment(
    name: str, directory: Path, database_url: str, env: dict[str, str], timeout: float
) -> Iterator[Deployment]:
    directory.mkdir()
    server = ServerProcess(
        "web", directory, {**SERVER_ENV, **env}, database_url, start_timeout=timeout
    )
    with server:
        yield Deployment(name, server, directory)


def figures_of(single: Deployment, cluster: Deployment) -> list[Figure]:
    figures = []
    for load, connections in single.rounds:
        name = {"spread": "spread over every seat", "hot": "one hot seat"}[load]
        label = f"{name}, {connections} connections"
        one, many = single.rounds[load, connections], cluster.rounds[load, connections]
        ratio = many.rate / one.rate if one.rate else float("nan")
        cpu_ratio = many.cpu_per_thousand / one.cpu_per_thousand
        figures += [
            Figure(f"single process: holds/s, {label}", one.rate, "req/s", note=one.mix()),
            Figure(
                f"  p50 / p99 (single, {label})",
                one.latency(0.99),
                "ms p99",
                note=f"p50 {one.latency(0.5):.1f} ms",
            ),
            Figure(f"  CPU per 1,000 holds (single, {label})", one.cpu_per_thousand, "CPU s"),
            Figure(
                f"cluster (2 shards, 2 gateways): holds/s, {label}",
                many.rate,
                "req/s",
                note=many.mix(),
            ),
            Figure(
                f"  p50 / p99 (cluster, {label})",
                many.latency(0.99),
                "ms p99",
                note=f"p50 {many.latency(0.5):.1f} ms",
            ),
            Figure(
                f"  CPU per 1,000 holds (cluster, {label})",
                many.cpu_per_thousand,
                "CPU s",
                note="every process: launcher, gateways, shard hosts, Ray's own",
            ),
            Figure(f"  holds/s, cluster / single ({label})", ratio, "x", ">= 0.5", ratio >= 0.5),
            Figure(
                f"  CPU per hold, cluster / single ({label})",
                cpu_ratio,
                "x",
                "<= 2",
                cpu_ratio <= 2,
            ),
        ]
    return figures


def run(args: argparse.Namespace) -> tuple[list[Figure], dict[str, Any]]:
    base = args.database_url
    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp,
        fresh_postgres_schema(base) as single_url,
        fresh_postgres_schema(base) as cluster_url,
        deployment("single", Path(tmp) / "single", single_url, {}, 60) as single,
        deployment(
            "cluster",
            Path(tmp) / "cluster",
            cluster_url,
            {"CLUSTER": "ray", "CLUSTER_SHARDS": "2", "CLUSTER_GATEWAYS": "2"},
            CLUSTER_START,
        ) as cluster,
    ):
        for each in (single, cluster):
            anyio.run(each.prepare, args.dates)
        per_round = args.seconds / args.rounds
        for number in range(args.rounds):
            for connections in args.connections:
                for load in LOADS:
                    for each in (single, cluster) if number % 2 == 0 else (cluster, single):
                        print(
                            f"round {number + 1}/{args.rounds}: {each.name} {load}, "
                            f"{connections} connections ...",
                            flush=True,
                        )
                        each.run(load, per_round, args.warmup, connections)
        details = {
            each.name: {
                f"{load}@{connections}": {
                    "rate": rounds.rate,
                    "requests": rounds.requests,
                    "seconds": rounds.seconds,
                    "cpu_seconds": rounds.cpu_seconds,
                    "p50_ms": rounds.latency(0.5),
                    "p99_ms": rounds.latency(0.99),
                    "outcomes": rounds.outcomes,
                }
                for (load, connections), rounds in each.rounds.items()
            }
            for each in (single, cluster)
        } | {"connections": args.connections, "dates": args.dates}
        return figures_of(single, cluster), details


def missing_services(database_url: str) -> str | None:
    """What cluster mode needs that does not answer here: PostgreSQL and Redis."""
    import redis
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        return f"PostgreSQL at {database_url} does not answer ({type(error).__name__})"
    finally:
        engine.dispose()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as error:
        return f"Redis at {url} does not answer ({type(error).__name__})"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[64, 256],
        help="the loads at each of these concurrencies (comma-separated)",
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="per load and deployment")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    # Every spread request a new hold, on either deployment: 50 seats a date.
    parser.add_argument("--dates", type=int, default=12000)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.warmup, args.dates = 4.0, 2, 0.5, 4000
    missing = missing_services(args.database_url)
    if missing:
        # make bench on a machine without them: the report says "not run".
        print(f"bench_cluster: not run: {missing} (see the README's cluster mode)")
        return
    figures, details = run(args)
    publish("cluster", figures, details, quick=args.quick)


if __name__ == "__main__":
    main()
