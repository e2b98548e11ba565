"""The HTTP benchmark (issue #4): the hold route against a bare Starlette endpoint, one server.

    python -m loadtests.bench_http            # about three minutes
    python -m loadtests.bench_http --quick    # a short run to check the harness

One server process (`loadtests.bench_server`: the service on a fresh SQLite file, plus a bare
Starlette JSON endpoint) and one generator process (`loadtests.loadgen`, 64 keep-alive
connections). In alternating rounds it measures req/s and latency of
- `POST /bare/reservations`: the bare endpoint (parse a JSON body, answer 201 JSON): baseline;
- `POST /api/reservations` spread over every seat of many dates, round robin, by a few hundred
  PROCESSING users (at most one seat per user and date). Holds last the service's default
  5 minutes and there are enough dates (3,000 x 50 seats) that every request of the run holds
  a seat nobody holds: every answer is a 201, as in the first minutes of an on-sale;
- `POST /api/reservations` on one hot seat: everyone wants seat 1 of one date, so SEAT_TAKEN
  but for the first (the holder's own repeats answer 200).
Then a second server whose holds lapse after 2 s measures the same spread load as an endless
on-sale, in which every hold also costs its expiry (a timer turn, a second journaled event,
the listeners), again against its own bare baseline; and an open-loop sweep of that load at
fractions of its measured ceiling gives hold latency against offered load (`sweep` in the
JSON; the chart of REPORT.md).

Writes loadtests/results/http.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from loadtests.figures import Figure, percentile, publish
from loadtests.loadgen import run_apart
from loadtests.server_process import ServerProcess
from loadtests.service_client import (
    DateOnSale,
    Member,
    admin_headers,
    join_all,
    put_on_sale,
    wait_active,
)

ADMIN_TOKEN = "bench-admin-token"
PRICE = 100
SEATS = 50  # the contract's default seats per date
USERS = 400
SWEEP = (0.25, 0.5, 0.75, 0.9, 1.0, 1.2)

ON_SALE_HOLD_SECONDS = 300.0  # the service's default: no hold lapses during the run
ON_SALE_DATES = 3000  # 150,000 seats: more than the spread load holds in a run
LAPSING_HOLD_SECONDS = 2.0
# Holds lapse after 2 s, before the load comes round to the same seat again: an endless
# on-sale in which every request can succeed and every hold is expired by its date's timer.
LAPSING_DATES = 500
# Admit everyone at once and keep them active for the whole run.
SERVER_ENV = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "ADMIT_BATCH": "100000",
    "ADMIT_INTERVAL_SECONDS": "0.05",
    "ACTIVE_TTL_SECONDS": "7200",
    "SEATS_PER_DATE": str(SEATS),
    "MAX_HOLDS_PER_USER": "4",
}
SPREAD = "spread over every seat"
LAPSING = "spread, holds lapsing after 2 s"

Request = tuple[str, str, dict[str, str], str | None]


def hold_request(member: Member, concert_id: str, date: str, seat: int) -> Request:
    body = json.dumps({"concertId": concert_id, "date": date, "seat": seat})
    headers = {**member.headers, "Content-Type": "application/json"}
    return ("POST", "/api/reservations", headers, body)


def spread_requests(dates: list[DateOnSale], members: list[Member]) -> list[Request]:
    """Every seat of every date once, date-major inner loop so consecutive requests hit
    different date actors; request k goes to user k // len(dates) % users, so a user holds at
    most one seat per date (the per-date hold limit is never what answers)."""
    requests = []
    per_user = len(dates)
    for k in range(len(dates) * SEATS):
        date = dates[k % len(dates)]
        seat = k // len(dates) + 1
        member = members[(k // per_user) % len(members)]
        requests.append(hold_request(member, date.concert_id, date.date, seat))
    return requests


def hot_requests(hot: DateOnSale, members: list[Member]) -> list[Request]:
    return [hold_request(m, hot.concert_id, hot.date, 1) for m in members]


def bare_requests(members: list[Member]) -> list[Request]:
    return [
        ("POST", "/bare/reservations", headers, body)
        for _, _, headers, body in hot_requests(DateOnSale("bare", "2030-01-01", 1, 0), members)
    ]


@dataclass
class Series:
    """One load across rounds: generator results merged by request count."""

    name: str
    results: list[dict[str, Any]] = field(default_factory=list)
    server_cpu: float = 0.0

    def add(self, result: dict[str, Any], server_cpu: float) -> None:
        self.results.append(result)
        self.server_cpu += server_cpu

    @property
    def seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.results))

    @property
    def rate(self) -> float:
        return sum(len(r["raw_ms"]) for r in self.results) / self.seconds

    def latency(self, q: float) -> float:
        """The exact percentile `q` (0..1), in ms, over every round's requests."""
        merged = sorted(x for r in self.results for x in r["raw_ms"])
        return percentile(merged, q)

    def outcomes(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for r in self.results:
            for key, count in r["outcomes"].items():
                merged[key] = merged.get(key, 0) + count
        return merged

    def mix(self) -> str:
        outcomes = self.outcomes()
        total = sum(outcomes.values()) or 1
        ranked = sorted(outcomes.items(), key=lambda item: -item[1])
        return ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in ranked)

    def journal(self) -> str:
        commits = sum(r["journal"]["commits"] for r in self.results)
        events = sum(r["journal"]["events"] for r in self.results)
        if not commits:
            return "journal: no commits"
        return (
            f"journal: {commits / self.seconds:,.0f} commits/s, "
            f"{events / commits:.1f} events/commit"
        )

    def stalls(self) -> str:
        gc_seconds = sum(r["server_stalls"]["gc_seconds"] for r in self.results)
        longest = max(r["server_stalls"]["gc_longest_ms"] for r in self.results)
        lag = max(r["server_stalls"]["loop_lag_max_ms"] for r in self.results)
        over = sum(r["server_stalls"]["loop_lags_over_20ms"] for r in self.results)
        return (
            f"server GC {100 * gc_seconds / self.seconds:.0f}% (longest {longest:.0f} ms); "
            f"loop late > 20 ms {over} times, worst {lag:.0f} ms"
        )

    def generator_cpu(self) -> float:
        busy = sum(r["generator_cpu_share"] * r["seconds"] for r in self.results)
        return float(busy) / self.seconds


class Generator:
    """Runs loadtests.loadgen in a subprocess against the server, one load at a time."""

    def __init__(self, server: ServerProcess, directory: Path, connections: int) -> None:
        self.server = server
        self.directory = directory
        self.connections = connections
        self.sent: dict[str, int] = {}

    def run(
        self,
        name: str,
        requests: list[Request],
        seconds: float,
        warmup: float,
        rate: float | None = None,
    ) -> tuple[dict[str, Any], float]:
        """One load; returns the generator's result and the server's CPU seconds meanwhile."""
        offset = self.sent.get(name, 0)
        spec = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "connections": self.connections,
            "seconds": seconds,
            "warmup": warmup,
            "rate": rate,
            "offset": offset,
            "raw": rate is None,
            "requests": requests,
        }
        journal = self.journal_stats()
        self.diagnostics()  # opens the window
        cpu = self.server.cpu_seconds()
        result = run_apart(spec, self.directory, name)
        server_cpu = self.server.cpu_seconds() - cpu
        # The window closes first: listing thousands of actors (the journal figures come with
        # them) holds the loop for a while, and that is the admin API's cost, not the load's.
        result["server_stalls"] = self.diagnostics()
        after = self.journal_stats()
        result["journal"] = {key: after[key] - journal[key] for key in ("commits", "events")}
        self.sent[name] = offset + result["sent"]
        return result, server_cpu

    def diagnostics(self) -> dict[str, float]:
        """The server's collector time and event-loop lag since the last call (bench_server)."""
        response = httpx.get(f"{self.server.url}/bare/diagnostics", timeout=60)
        response.raise_for_status()
        figures: dict[str, float] = response.json()
        return figures

    def journal_stats(self) -> dict[str, int]:
        """The journal writer's counters (commits, events) from the admin API."""
        response = httpx.get(
            f"{self.server.url}/admin/actors", headers=admin_headers(ADMIN_TOKEN), timeout=60
        )
        response.raise_for_status()
        journal: dict[str, int] = response.json()["journal"] or {"commits": 0, "events": 0}
        return journal


async def prepare(
    server: ServerProcess, dates: int
) -> tuple[list[DateOnSale], DateOnSale, list[Member]]:
    async with httpx.AsyncClient(timeout=60) as client:
        return await on_sale(client, server.url, dates)


async def on_sale(
    client: httpx.AsyncClient, base_url: str, dates: int
) -> tuple[list[DateOnSale], DateOnSale, list[Member]]:
    """`dates` dates for the spread load, one for the hot seat, USERS members all active."""
    spread = await put_on_sale(
        client, base_url, ADMIN_TOKEN, prefix="spread", dates=dates, seats=SEATS, price=PRICE
    )
    (hot,) = await put_on_sale(
        client, base_url, ADMIN_TOKEN, prefix="hot", dates=1, seats=SEATS, price=PRICE
    )
    members = await join_all(client, base_url, [f"bench-{n:05d}" for n in range(USERS)])
    await wait_active(client, base_url, ADMIN_TOKEN, len(members))
    return spread, hot, members


def loads_of(
    spread: list[DateOnSale], hot: DateOnSale, members: list[Member]
) -> dict[str, list[Request]]:
    """The benchmark's loads by name: bare, spread, hot."""
    return {
        "bare": bare_requests(members),
        "spread": spread_requests(spread, members),
        "hot": hot_requests(hot, members),
    }


def hold_figures(
    label: str, series: Series, bare: Series, connections: int, target: bool
) -> list[Figure]:
    """Rate, ratio to the bare endpoint of the same server, p50 and p99 of one hold load."""
    ratio = series.rate / bare.rate
    p99 = series.latency(0.99)
    ratio_target, p99_target = (">= 0.5", f"< 50 ms at {connections} connections")
    return [
        Figure(f"POST /api/reservations, {label}", series.rate, "req/s", note=series.mix()),
        Figure(
            f"  ratio to bare ({label})",
            ratio,
            "x",
            ratio_target if target else "",
            ratio >= 0.5 if target else None,
            "" if target else f"bare endpoint on this server: {bare.rate:,.0f} req/s",
        ),
        Figure(f"  p50 ({label})", series.latency(0.5), "ms"),
        Figure(
            f"  p99 ({label})",
            p99,
            "ms",
            p99_target if target else "",
            p99 < 50 if target else None,
            f"server CPU {100 * series.server_cpu / series.seconds:.0f}% of a core, "
            f"generator {100 * series.generator_cpu():.0f}%; {series.journal()}; "
            + series.stalls(),
        ),
    ]


def figures_of(on_sale: Phase, lapsing: Phase, connections: int) -> list[Figure]:
    bare = on_sale.series["bare"]
    figures = [
        Figure(
            "bare Starlette JSON endpoint",
            bare.rate,
            "req/s",
            note=f"baseline; p50 {bare.latency(0.5):.1f} ms, p99 {bare.latency(0.99):.1f} ms",
        )
    ]
    figures += hold_figures(SPREAD, on_sale.series["spread"], bare, connections, True)
    figures += hold_figures("one hot seat", on_sale.series["hot"], bare, connections, True)
    lapsing_bare = lapsing.series["bare"]
    figures += hold_figures(LAPSING, lapsing.series["spread"], lapsing_bare, connections, False)
    for point in lapsing.sweep:
        figures.append(
            Figure(
                f"  open loop at {point['offered_rate']:,.0f} holds/s offered",
                point["latency_ms"]["p99"],
                "ms p99",
                note=f"achieved {point['rate']:,.0f}/s; p50 {point['latency_ms']['p50']:.1f} ms",
            )
        )
    return figures


@dataclass
class Phase:
    """One server, its loads measured in alternating rounds, and (optionally) the sweep."""

    hold_seconds: float
    dates: int
    series: dict[str, Series] = field(default_factory=dict)
    sweep: list[dict[str, Any]] = field(default_factory=list)
    spread_sent: int = 0
    exit_status: int | None = None

    def details(self) -> dict[str, Any]:
        spread = self.series["spread"]
        return {
            "hold_seconds": self.hold_seconds,
            "dates": self.dates,
            "spread_seats": self.dates * SEATS,
            "spread_requests_sent": self.spread_sent,
            "spread_seat_revisit_seconds": self.dates * SEATS / spread.rate,
            "server_exit_status": self.exit_status,
            "series": {
                name: {
                    "rounds": [{k: v for k, v in r.items() if k != "raw_ms"} for r in s.results],
                    "server_cpu_seconds": s.server_cpu,
                }
                for name, s in self.series.items()
            },
        }


def measure(
    phase: Phase, args: argparse.Namespace, directory: Path, *, hot: bool, sweep: bool
) -> None:
    directory.mkdir()
    env = SERVER_ENV | {"HOLD_SECONDS": str(phase.hold_seconds)}
    server = ServerProcess("loadtests.bench_server", directory, env, args.database_url)
    with server:
        print(
            f"server on {server.url}, holds of {phase.hold_seconds:g} s; "
            f"putting {phase.dates} dates on sale ...",
            flush=True,
        )
        dates, hot_date, members = anyio.run(prepare, server, phase.dates)
        loads = loads_of(dates, hot_date, members)
        if not hot:
            del loads["hot"]
        phase.series = {name: Series(name) for name in loads}
        generator = Generator(server, directory, args.connections)
        part = args.seconds / args.rounds
        for round_no in range(1, args.rounds + 1):
            for name, requests in loads.items():
                print(f"round {round_no}/{args.rounds}: {name} ...", flush=True)
                phase.series[name].add(*generator.run(name, requests, part, args.warmup))
        if sweep:
            ceiling = phase.series["spread"].rate
            for fraction in SWEEP:
                offered = round(ceiling * fraction)
                print(f"open loop: {offered} holds/s offered ...", flush=True)
                result, server_cpu = generator.run(
                    "spread", loads["spread"], args.sweep_seconds, 1.0, rate=offered
                )
                result["fraction_of_ceiling"] = fraction
                result["server_cpu_share"] = server_cpu / result["seconds"]
                phase.sweep.append(result)
        phase.spread_sent = generator.sent.get("spread", 0)
        phase.exit_status = server.stop()


def run(args: argparse.Namespace) -> tuple[list[Figure], dict[str, Any]]:
    on_sale = Phase(args.hold_seconds, args.dates)
    lapsing = Phase(LAPSING_HOLD_SECONDS, args.lapsing_dates)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        measure(on_sale, args, Path(tmp) / "on-sale", hot=True, sweep=False)
        measure(lapsing, args, Path(tmp) / "lapsing", hot=False, sweep=args.sweep)
    details = {
        "connections": args.connections,
        "rounds": args.rounds,
        "seconds_per_load": args.seconds,
        "database_url": args.database_url or "sqlite (temporary file)",
        "seats_per_date": SEATS,
        "users": USERS,
        "on_sale": on_sale.details(),
        "lapsing": lapsing.details(),
        "sweep": lapsing.sweep,
        "generator": "loadtests.loadgen (Python, uvloop, keep-alive HTTP/1.1), own process",
        "server": "loadtests.bench_server: web.app.create_app + bare Starlette app, uvicorn "
        "uvloop/httptools, one process per phase",
    }
    return figures_of(on_sale, lapsing, args.connections), details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=12.0, help="per load, over all rounds")
    # Short rounds, many of them: this shared machine's speed swings by half within seconds,
    # and only loads measured close together in time share the same machine.
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--dates", type=int, default=ON_SALE_DATES, help="dates of the on-sale spread load"
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=ON_SALE_HOLD_SECONDS,
        help="HOLD_SECONDS of the on-sale server; a short one makes the spread load revisit "
        "held seats",
    )
    parser.add_argument(
        "--lapsing-dates", type=int, default=LAPSING_DATES, help="dates of the lapsing load"
    )
    parser.add_argument("--sweep-seconds", type=float, default=4.0)
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.warmup = 2.0, 1, 0.5
        args.dates, args.lapsing_dates = 600, 300
        args.sweep_seconds = 1.0
    figures, details = run(args)
    publish("http", figures, details, quick=args.quick)


if __name__ == "__main__":
    main()
