"""The engine benchmark (issue #2): actor round trips, a hot date, a million-user waiting room.

    python -m loadtests.bench_engine            # the full run, about a minute
    python -m loadtests.bench_engine --quick    # a small run to check the harness

One run measures, side by side on the same event loop:

(a) baseline: a bare anyio request/reply round trip, the shape of `Actor.ask` without any domain
    work: a bounded memory object stream to one task that replies through an `anyio.Event`;
(b) holds/s on one hot date through the real `EngineSystem` (MemoryJournal, system clock) from
    1,000 concurrent callers, as a ratio to (a);
(c) joins/s into the real waiting-room actor until 1,000,000 users wait, then the token gate's
    read path (`EngineSystem.lookup_token`: token check + status + rank + ETA) and the bare
    `WaitingRoom.rank_of` timed one call at a time; plus resident memory per waiting user,
    measured on the pure `WaitingRoom` state in a fresh subprocess so nothing else pollutes it.

It prints a markdown table (figure, target, verdict) and writes loadtests/results/engine.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import psutil
from anyio.streams.memory import MemoryObjectReceiveStream

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.config import EngineConfig
from engine.domain.waiting_room import RoomOpened, WaitingRoom
from engine.errors import Overloaded, Refused
from engine.journal import MemoryJournal
from engine.system import EngineSystem
from engine.views import RoomSettings
from loadtests.actor_probes import PROBES, Probe, ProbeActor, serve_probe
from loadtests.figures import Figure, percentile, publish
from loadtests.gc_meter import GcMeter
from tests.commands import hold, join, release

CONCERT = "bench"
DATE = "2030-01-01"
PRICE = 100


def user_id(n: int) -> str:
    """A realistic short user id (11 characters); the contract allows up to 64."""
    return f"fan-{n:07d}"


# -- a timed load of concurrent callers ---------------------------------------------------------


@dataclass
class Load:
    """What the callers of one timed run share: the window flags and what they measured."""

    running: bool = True
    measuring: bool = False
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def record(self, outcome: str, seconds: float) -> None:
        if self.measuring:
            self.outcomes[outcome] += 1
            self.latencies.append(seconds)

    def merge(self, other: Load) -> None:
        """Add another window's measurements (the rounds of an interleaved run)."""
        self.latencies += other.latencies
        self.outcomes.update(other.outcomes)
        self.elapsed += other.elapsed

    def rate(self, *outcomes: str) -> float:
        wanted = outcomes or tuple(self.outcomes)
        return sum(self.outcomes[o] for o in wanted) / self.elapsed


async def drive(
    callers: int, warmup: float, seconds: float, call: Callable[[int, Load], Awaitable[None]]
) -> Load:
    """Run `callers` tasks that repeat `call` and count only what completes in the window."""
    load = Load()

    async def caller(index: int) -> None:
        while load.running:
            await call(index, load)

    async with anyio.create_task_group() as tg:
        for index in range(callers):
            tg.start_soon(caller, index)
        await anyio.sleep(warmup)
        load.measuring = True
        started = time.perf_counter()
        await anyio.sleep(seconds)
        load.measuring = False
        load.elapsed = time.perf_counter() - started
        load.running = False
    return load


# -- (a) the bare round trip --------------------------------------------------------------------


class _Reply:
    """The caller's reply slot, as in `engine.actor._Pending`."""

    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None


async def bare_round_trips(callers: int, warmup: float, seconds: float, mailbox_size: int) -> Load:
    send, receive = anyio.create_memory_object_stream[tuple[int, _Reply]](mailbox_size)

    async def serve(stream: MemoryObjectReceiveStream[tuple[int, _Reply]]) -> None:
        async with stream:
            async for payload, reply in stream:
                reply.value = payload
                reply.done.set()

    async def call(index: int, load: Load) -> None:
        reply = _Reply()
        started = time.perf_counter()
        send.send_nowait((index, reply))
        await reply.done.wait()
        load.record("reply", time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, receive)
        load = await drive(callers, warmup, seconds, call)
        send.close()
    return load


# -- (b) holds on one hot date ------------------------------------------------------------------


@dataclass
class HoldRun:
    holds: Load
    releases: Load
    seats: int


async def hot_date_holds(callers: int, warmup: float, seconds: float, seats: int) -> HoldRun:
    """Every caller is a user who holds a random seat of one date and, if it got it, releases
    it at once (a user changing their mind), so the date never sells out and the outcome mix
    stays that of a rush: a few holds succeed, most find the seat taken."""
    config = EngineConfig(seats_per_date=seats)
    catalog = [ConcertInfo(CONCERT, "Bench", "", (ConcertDateInfo(CONCERT, DATE, seats, PRICE),))]
    system = EngineSystem(MemoryJournal(), config=config, catalog=catalog)
    releases = Load(measuring=True)  # counted only while the holds' window is open
    rng = random.Random(7)

    async def call(index: int, load: Load) -> None:
        user = user_id(index)
        started = time.perf_counter()
        try:
            reservation = await hold(system, user, CONCERT, DATE, rng.randint(1, seats))
        except Refused as refused:
            load.record(refused.code, time.perf_counter() - started)
            return
        except Overloaded:
            load.record("OVERLOADED", time.perf_counter() - started)
            return
        load.record("HELD", time.perf_counter() - started)
        started = time.perf_counter()
        await release(system, user, reservation.reservation_id)
        if load.measuring:
            releases.record("RELEASED", time.perf_counter() - started)

    async with system.running():
        holds = await drive(callers, warmup, seconds, call)
    releases.elapsed = holds.elapsed
    return HoldRun(holds, releases, seats)


# -- the breakdown: what a turn costs, piece by piece ----------------------------------------


async def probe_rates(callers: int, warmup: float, seconds: float) -> dict[str, Load]:
    """The same load against each probe actor (see loadtests/actor_probes.py)."""
    loads: dict[str, Load] = {}
    for probe in PROBES:

        async def body(actor: ProbeActor) -> Load:
            async def call(index: int, load: Load) -> None:
                started = time.perf_counter()
                outcome = "reply"
                try:
                    await actor.ask(Probe(index))
                except Refused as refused:
                    outcome = refused.code
                load.record(outcome, time.perf_counter() - started)

            return await drive(callers, warmup, seconds, call)

        loads[probe] = await serve_probe(probe, body)
    return loads


# -- (c) a million waiting users ----------------------------------------------------------------


@dataclass
class QueueRun:
    users: int
    join_seconds: float
    join_latencies: list[float]
    lookup_ns: list[int]
    rank_ns: list[int]
    waiting: int


async def million_joins(users: int, callers: int, lookups: int) -> QueueRun:
    """Join `users` distinct users through the waiting-room actor (default admission: 100
    every 10 s, so the room keeps moving), then time the token gate's reads one by one."""
    system = EngineSystem(MemoryJournal(), config=EngineConfig())
    latencies: list[float] = []
    async with system.running():

        async def joiner(first: int) -> None:
            for n in range(first, users, callers):
                started = time.perf_counter()
                await join(system, user_id(n))
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for first in range(callers):
                tg.start_soon(joiner, first)
        join_seconds = time.perf_counter() - started

        room = system.room.state
        seqs = random.Random(11).sample(list(room.waiting), min(lookups, len(room.waiting)))
        tokens = [room.token_for(seq) for seq in seqs]
        lookup_ns: list[int] = []
        clock = time.perf_counter_ns
        for token in tokens:
            started_ns = clock()
            view = system.token(token)
            lookup_ns.append(clock() - started_ns)
            assert view is not None and view.rank is not None
        rank_ns: list[int] = []
        for seq in seqs:
            started_ns = clock()
            room.rank_of(seq)
            rank_ns.append(clock() - started_ns)
        waiting = len(room.waiting)
    return QueueRun(users, join_seconds, latencies, lookup_ns, rank_ns, waiting)


def memory_probe(users: int) -> dict[str, float]:
    """In a fresh interpreter: the RSS growth of a pure WaitingRoom as `users` join it
    (decided by `WaitingRoom.join` and applied, as the actor does, without the journal)."""
    room = WaitingRoom(RoomSettings(100, 10.0, None, 600.0))
    room.apply(RoomOpened("00" * 32))
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    for n in range(1, users + 1):
        for event in room.join(user_id(n), 1_700_000_000.0):
            room.apply(event)
    gc.collect()
    after = process.memory_info().rss
    assert len(room.waiting) == users
    return {"users": users, "rss_before": before, "rss_after": after}


def memory_per_user(users: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "loadtests.bench_engine", "--memory-probe", str(users)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    probe: dict[str, float] = json.loads(out.stdout)
    probe["bytes_per_user"] = (probe["rss_after"] - probe["rss_before"]) / users
    return probe


# -- the run ------------------------------------------------------------------------------------


def us(seconds: float) -> float:
    return seconds * 1e6


@dataclass
class Phase:
    """The wall time of one part of the run and the collector's share of it."""

    wall: float = 0.0
    gc: GcMeter = field(default_factory=GcMeter)

    def note(self) -> str:
        return self.gc.describe(self.wall)


def figures_of(
    bare: Load,
    holds: HoldRun,
    queue: QueueRun,
    memory: dict[str, float],
    phases: dict[str, Phase],
    probes: dict[str, Load],
) -> list[Figure]:
    bare_rate = bare.rate()
    hold_rate = holds.holds.rate()
    commands = hold_rate + holds.releases.rate()
    hold_lat = sorted(holds.holds.latencies)
    bare_lat = sorted(bare.latencies)
    lookups = sorted(queue.lookup_ns)
    ranks = sorted(queue.rank_ns)
    joins = sorted(queue.join_latencies)
    taken = holds.holds.outcomes
    total_holds = sum(taken.values())
    mix = ", ".join(f"{code} {100 * n / total_holds:.1f}%" for code, n in taken.most_common())
    bytes_per_user = memory["bytes_per_user"]
    lookup_p99 = percentile(lookups, 0.99) / 1000
    breakdown = [
        Figure(
            f"(b) breakdown: probe actor, {probe}",
            1e6 / load.rate(),
            "µs/command",
            note=f"{load.rate():,.0f}/s; {1e6 / load.rate() - 1e6 / bare_rate:+.1f} µs vs bare",
        )
        for probe, load in probes.items()
    ]
    if probes:
        breakdown.append(
            Figure(
                "(b) breakdown: hot-date command",
                1e6 / commands,
                "µs/command",
                note=f"{1e6 / commands - 1e6 / bare_rate:+.1f} µs vs bare",
            )
        )
    return [
        Figure("(a) bare anyio request/reply", bare_rate, "round trips/s", note="baseline"),
        Figure(
            "(a) bare round trip latency p50",
            us(percentile(bare_lat, 0.5)),
            "µs",
            note=f"p99 {us(percentile(bare_lat, 0.99)):,.0f} µs with 1,000 callers queued; "
            + phases["a"].note(),
        ),
        Figure("(b) holds on one hot date", hold_rate, "holds/s", note=mix),
        Figure(
            "(b) holds/s ÷ bare round trips/s",
            hold_rate / bare_rate,
            "x",
            ">= 0.5",
            hold_rate / bare_rate >= 0.5,
        ),
        Figure(
            "(b) date-actor commands/s ÷ bare",
            commands / bare_rate,
            "x",
            note=f"holds + releases = {commands:,.0f} commands/s, each one ask",
        ),
        Figure(
            "(b) hold latency p50",
            us(percentile(hold_lat, 0.5)),
            "µs",
            note=f"p99 {us(percentile(hold_lat, 0.99)):,.0f} µs with 1,000 callers queued; "
            + phases["b"].note(),
        ),
        *breakdown,
        Figure(
            "(c) joins through the waiting-room actor",
            queue.users / queue.join_seconds,
            "joins/s",
            note=f"{queue.users:,} users; join p99 {us(percentile(joins, 0.99)):,.0f} µs; "
            + phases["c"].note(),
        ),
        Figure(
            "(c) token lookup p50 (gate: check + rank + ETA)",
            percentile(lookups, 0.5) / 1000,
            "µs",
            note=f"{queue.waiting:,} waiting",
        ),
        Figure(
            "(c) token lookup p99",
            lookup_p99,
            "µs",
            "< 50 µs",
            lookup_p99 < 50,
            f"max {lookups[-1] / 1000:,.0f} µs" if lookups else "",
        ),
        Figure(
            "(c) rank_of alone p50",
            percentile(ranks, 0.5) / 1000,
            "µs",
            note=f"p99 {percentile(ranks, 0.99) / 1000:.2f} µs (SortedList bisect)",
        ),
        Figure(
            "(c) resident memory per waiting user",
            bytes_per_user,
            "bytes",
            "<= 400 bytes",
            bytes_per_user <= 400,
            f"RSS delta of {int(memory['users']):,} joins, pure state, fresh process",
        ),
    ]


async def run(args: argparse.Namespace) -> tuple[list[Figure], dict[str, Any]]:
    config = EngineConfig()
    phases = {name: Phase() for name in "abc"}
    # Baseline and engine alternate in short slices, so a neighbour's load on this shared
    # machine weighs on both sides of each ratio alike.
    bare, probes = Load(), {probe: Load() for probe in PROBES if args.breakdown}
    holds = HoldRun(Load(), Load(), args.seats)
    part = args.seconds / args.rounds
    for round_no in range(1, args.rounds + 1):
        print(f"round {round_no}/{args.rounds}: (a) bare round trips ...", flush=True)
        with phases["a"].gc:
            started = time.perf_counter()
            bare.merge(await bare_round_trips(args.callers, args.warmup, part, config.mailbox_size))
            phases["a"].wall += time.perf_counter() - started
        print(f"round {round_no}/{args.rounds}: (b) hot-date holds ...", flush=True)
        with phases["b"].gc:
            started = time.perf_counter()
            run = await hot_date_holds(args.callers, args.warmup, part, args.seats)
            holds.holds.merge(run.holds)
            holds.releases.merge(run.releases)
            phases["b"].wall += time.perf_counter() - started
        if args.breakdown:
            print(f"round {round_no}/{args.rounds}: (b) probe actors ...", flush=True)
            for probe, load in (await probe_rates(args.callers, args.warmup, part)).items():
                probes[probe].merge(load)
    print(f"(c) {args.users:,} joins through the waiting-room actor ...", flush=True)
    with phases["c"].gc:
        queue = await million_joins(args.users, args.callers, args.lookups)
        phases["c"].wall = queue.join_seconds
    print(f"(c) memory per waiting user, fresh process, {args.users:,} users ...", flush=True)
    memory = memory_per_user(args.users)
    details = {
        "loop": args.loop,
        "callers": args.callers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "hot_date_seats": args.seats,
        "hold_outcomes": dict(holds.holds.outcomes),
        "releases": holds.releases.outcomes["RELEASED"],
        "waiting_users": args.users,
        "lookups_timed": len(queue.lookup_ns),
        "memory_probe": memory,
        "gc": {
            name: phase.gc.as_dict() | {"wall_s": round(phase.wall, 3)}
            for name, phase in phases.items()
        },
        "workload": {
            "a": "1,000 tasks each send (payload, reply) on a bounded memory object stream "
            "(4,096) to one task that sets reply.value and reply.done (an anyio.Event)",
            "b": f"1,000 users on one date of {args.seats} seats; each holds a random seat; "
            "on success it releases it at once (a second ask); SEAT_TAKEN refusals are turns "
            "too. EngineSystem + MemoryJournal + SystemClock, no subscribers",
            "c": "joins of distinct users by 1,000 concurrent callers through the waiting-room "
            "actor (EngineSystem + MemoryJournal, admission 100 per 10 s running); lookups one "
            "call at a time on random waiting tokens; memory: WaitingRoom.join + apply on a "
            "pure WaitingRoom in a fresh subprocess, RSS delta after gc / users "
            "(user ids of 11 characters)",
        },
    }
    return figures_of(bare, holds, queue, memory, phases, probes), details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="measured time per load, over all rounds"
    )
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured start of a slice")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating slices of baseline and engine"
    )
    parser.add_argument("--seats", type=int, default=50, help="seats of the hot date")
    parser.add_argument("--users", type=int, default=1_000_000, help="waiting users for (c)")
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the probe actors that split the cost of a turn",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes to check the harness")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    if args.quick:
        args.seconds, args.warmup, args.rounds = 1.0, 0.2, 1
        args.users, args.lookups = 20_000, 5_000
    figures, details = anyio.run(
        run, args, backend="asyncio", backend_options={"use_uvloop": args.loop == "uvloop"}
    )
    publish("engine", figures, details, quick=args.quick)


if __name__ == "__main__":
    main()
