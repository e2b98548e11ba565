"""The rooms benchmark (issue #12): a million pre-queued buyers shuffled at the start, and the
token gate's read path with a million waiting, in a concert's room beside the site-wide one.

    python -m loadtests.bench_rooms             # 1,000,000 buyers, a minute or two
    python -m loadtests.bench_rooms --users 100000

(a) the start of an on-sale with `--users` pre-queued: the `Shuffled` event applied to a
    `ConcertRoom` (the SHAKE-256 keys, the sort, the places), which is also what a recovery
    replays; target under 2 s for 1,000,000;
(b) the token gate (`EngineSystem.token`: token check, status, rank, ETA) of a waiting token,
    timed one call at a time over a sample, with `--users` waiting in the site-wide room and
    then in a concert's room; the figures are the median and p99, and the concert room's as a
    ratio to the site-wide room's (the site-wide path must not lose speed: compare its figure
    with the same run on the previous release, which this script's site-wide part also runs on).

The rooms are filled by applying their events directly (what a recovery does), not through
the actors' mailboxes: this measures the shuffle and the reads, not joining. Prints a table and
writes loadtests/results/rooms.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import anyio

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.config import EngineConfig
from engine.domain.waiting_room import Joined
from engine.journal import MemoryJournal
from engine.system import EngineSystem

RESULTS = Path(__file__).parent / "results" / "rooms.json"
T0 = time.time()  # the rooms' actors run on the system clock
LOOKUPS = 20_000
SHUFFLE_TARGET_SECONDS = 2.0


def user_id(n: int) -> str:
    return f"fan-{n:07d}"


def fill(room: Any, users: int, at: float) -> None:
    """`users` joins applied to `room` (its state), as a recovery would replay them."""
    apply = room.apply
    for n in range(1, users + 1):
        apply(Joined(n, user_id(n), at))


def time_lookups(system: EngineSystem, tokens: list[str]) -> list[int]:
    clock = time.perf_counter_ns
    spent = []
    for token in tokens:
        started = clock()
        view = system.token(token)
        spent.append(clock() - started)
        assert view is not None and view.rank is not None, token
    return spent


def summary(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    return {
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


async def site_wide(users: int) -> dict[str, float]:
    system = EngineSystem(MemoryJournal(), config=EngineConfig())
    async with system.running():
        room = system.room.state
        fill(room, users, T0)
        seqs = random.Random(7).sample(range(1, users + 1), min(LOOKUPS, users))
        tokens = [room.token_for(seq) for seq in seqs]
        gc.collect()
        return summary(time_lookups(system, tokens))


async def concert_room(users: int) -> dict[str, Any]:
    from engine.domain.concert_room import Shuffled
    from engine.views import OnSale

    on_sale = OnSale(T0 + 86_400, 10**6, 100, 10.0, None, 600.0)
    concert = ConcertInfo("gig", "Gig", "Hall", (ConcertDateInfo("gig", "2030-01-01", 50, 10),))
    concert = ConcertInfo(concert.concert_id, concert.title, concert.venue, concert.dates, on_sale)
    system = EngineSystem(MemoryJournal(), config=EngineConfig(), catalog=[concert])
    async with system.running():
        actor = system.room_actor("gig")
        assert actor is not None
        room = actor.state
        fill(room, users, T0)
        gc.collect()
        shuffle = Shuffled(secrets.token_hex(32), on_sale.starts_at)
        # CPU time as well as wall time: on a shared machine the wall time also counts the
        # neighbours' turns on the cores.
        started, cpu_started = time.perf_counter(), time.process_time()
        room.apply(shuffle)
        shuffle_seconds = time.perf_counter() - started
        shuffle_cpu_seconds = time.process_time() - cpu_started
        assert len(room.waiting) == users and not room.pre_queued
        seqs = random.Random(7).sample(range(1, users + 1), min(LOOKUPS, users))
        tokens = [room.token_for(seq) for seq in seqs]
        gc.collect()
        return {
            "shuffle_seconds": shuffle_seconds,
            "shuffle_cpu_seconds": shuffle_cpu_seconds,
            **summary(time_lookups(system, tokens)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--site-only", action="store_true", help="the previous release's part")
    args = parser.parse_args()
    site = anyio.run(site_wide, args.users)
    print(f"site-wide room, {args.users:,} waiting: token gate p50 {site['p50_us']:.1f} us,"
          f" p99 {site['p99_us']:.1f} us")  # fmt: skip
    if args.site_only:
        return
    room = anyio.run(concert_room, args.users)
    ratio = room["p50_us"] / site["p50_us"]
    verdict = "pass" if room["shuffle_cpu_seconds"] < SHUFFLE_TARGET_SECONDS else "FAIL"
    print(f"concert room, {args.users:,} waiting: token gate p50 {room['p50_us']:.1f} us,"
          f" p99 {room['p99_us']:.1f} us ({ratio:.2f}x the site-wide room's)")  # fmt: skip
    print(f"shuffle of {args.users:,} pre-queued: {room['shuffle_seconds']:.2f} s"
          f" ({room['shuffle_cpu_seconds']:.2f} s of CPU; target < {SHUFFLE_TARGET_SECONDS} s:"
          f" {verdict})")  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"users": args.users, "site_wide": site, "concert_room": room, "ratio_p50": ratio},
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
