"""`make soak`: the real server killed with SIGKILL once a cycle under a full-flow load,
restarted on the same database, and audited after every cycle.

    python -m loadtests.soak                                 # 5 cycles of 30 s on SQLite
    python -m loadtests.soak --cycles 20 --seconds 60 --database postgresql
    make soak SOAK_CYCLES=20 SOAK_SECONDS=60 SOAK_DATABASE=postgresql

It starts `concert-queue serve` on a scratch database (a SQLite file in a temporary directory,
or a fresh schema of the PostgreSQL at DATABASE_URL_TEST, by default the local one). Each
cycle puts a new concert on sale and lets new buyers (loadtests.buyers) shop for --seconds:
join, wait for admission, charge, hold, pay, every write with an Idempotency-Key and retried
with it until it settles. At a random moment of the cycle the server gets SIGKILL and is
started again at once on the same database; its recovery time runs from the kill until
/readyz answers 200, and meanwhile the buyers keep retrying. At the end of the cycle they
finish their rounds, the checkouts settle, and the audit (loadtests.audit, with the buyers'
ledger) checks every book of the database and everything the buyers were told.

One line per cycle: requests, acknowledged charges and payments, recovery seconds and
violations (failed audit checks, answers the contract does not allow, requests unanswered
for more than --answer-bound seconds). The exit status is 0 only if no cycle had one.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import get_args

import anyio
import anyio.to_thread
import httpx

from loadtests.audit import audit, settle
from loadtests.buyers import NO_ANSWER, Ledger, Shop, run_buyers
from loadtests.databases import DATABASE_KINDS, DatabaseKind, scratch_database
from loadtests.server_process import ServerProcess
from loadtests.service_client import put_on_sale

SERVER_ENV = {
    "ADMIT_BATCH": "100",
    "ADMIT_INTERVAL_SECONDS": "0.05",
    "ACTIVE_TTL_SECONDS": "600",
    "HOLD_SECONDS": "300",
    "MAX_HOLDS_PER_USER": "4",
}
PRICE = 25
SEATS_PER_SECOND = 250  # seats of each date per second of a cycle: more than buyers here buy
KILL_WINDOW = (0.2, 0.8)  # the kill lands in this part of a cycle's span


@dataclass
class Cycle:
    """What one cycle did and found."""

    number: int
    requests: int = 0
    charges: int = 0  # acknowledged
    payments: int = 0  # acknowledged
    cut_off: int = 0  # requests that got no answer (the kill, the restart)
    killed_after: float = 0.0  # seconds into the cycle
    recovery_seconds: float = 0.0  # from SIGKILL until /readyz answered 200
    violations: list[str] = field(default_factory=list)
    server_lost: bool = False  # the server did not come back after the kill

    def line(self, cycles: int) -> str:
        return (
            f"cycle {self.number}/{cycles}: {self.requests} requests ({self.cut_off} unanswered), "
            f"{self.charges} charges and {self.payments} payments acknowledged, killed after "
            f"{self.killed_after:.1f} s, recovered in {self.recovery_seconds:.2f} s, "
            f"violations: {len(self.violations)}"
        )


@dataclass(frozen=True)
class Options:
    cycles: int
    seconds: float
    database: DatabaseKind
    buyers: int
    seats: int
    seats_per_payment: int
    answer_bound: float
    seed: int


async def run_cycle(
    number: int, server: ServerProcess, admin_token: str, options: Options, rng: random.Random
) -> Cycle:
    cycle = Cycle(number)
    ledger = Ledger()
    async with httpx.AsyncClient(timeout=options.answer_bound) as client:
        dates = await put_on_sale(
            client,
            server.url,
            admin_token,
            prefix=f"soak{number}",
            dates=2,
            seats=options.seats,
            price=PRICE,
        )
        shop = Shop(
            server.url,
            dates,
            seats_per_payment=options.seats_per_payment,
            answer_timeout=options.answer_bound,
        )
        users = [f"c{number}-buyer{n}" for n in range(options.buyers)]
        stop = anyio.Event()
        began = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(run_buyers, shop, users, ledger, stop, client=client))
            await anyio.sleep(rng.uniform(*KILL_WINDOW) * options.seconds)
            killed = time.monotonic()
            cycle.killed_after = killed - began
            server.kill()
            try:
                await anyio.to_thread.run_sync(lambda: server.start(poll=0.02))
            except RuntimeError as error:  # it exited, or never got ready: nothing to audit
                cycle.server_lost = True
                cycle.violations.append(f"the server did not come back: {error}")
                tg.cancel_scope.cancel()
                return cycle
            cycle.recovery_seconds = time.monotonic() - killed
            await anyio.sleep(max(0.0, options.seconds - (time.monotonic() - began)))
            stop.set()  # the buyers finish their rounds
    if not await settle(server.url, admin_token):
        cycle.violations.append("checkouts still unsettled after the load stopped")
    result = await anyio.to_thread.run_sync(
        audit, server.url, admin_token, ledger.paid_tokens(), ledger
    )
    cycle.requests = len(ledger.exchanges)
    cycle.cut_off = sum(e.status == NO_ANSWER for e in ledger.exchanges)
    cycle.charges = ledger.acknowledged_charges
    cycle.payments = len(ledger.acknowledged_payments())
    cycle.violations += [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
    cycle.violations += ledger.breaches
    cycle.violations += [
        f"{e.route} unanswered for {e.seconds:.1f} s ({e.outcome})"
        for e in ledger.slower_than(options.answer_bound)
    ]
    return cycle


async def soak(options: Options, directory: Path, database_url: str) -> list[Cycle]:
    """Every cycle on one server (killed and restarted once a cycle); their results."""
    admin_token = secrets.token_urlsafe(16)
    env = {**SERVER_ENV, "ADMIN_TOKEN": admin_token}
    server = ServerProcess("web", directory, env, database_url)
    rng = random.Random(options.seed)
    cycles: list[Cycle] = []
    await anyio.to_thread.run_sync(server.start)
    try:
        for number in range(1, options.cycles + 1):
            cycle = await run_cycle(number, server, admin_token, options, rng)
            cycles.append(cycle)
            print(cycle.line(options.cycles), flush=True)
            for violation in cycle.violations[:20]:
                print(f"  {violation}", flush=True)
            if cycle.server_lost:
                break
    finally:
        server.stop()
    if any(cycle.violations for cycle in cycles):
        errors = [line for line in server.log().splitlines() if line.startswith("ERROR")]
        print(f"server log: {len(errors)} errors; the last ones:", *errors[-10:], sep="\n  ")
    return cycles


def parse(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=int(env("SOAK_CYCLES", "5")))
    parser.add_argument(
        "--seconds", type=float, default=float(env("SOAK_SECONDS", "30")), help="per cycle"
    )
    parser.add_argument(
        "--database", choices=get_args(DatabaseKind), default=env("SOAK_DATABASE", "sqlite")
    )
    parser.add_argument("--buyers", type=int, default=16, help="concurrent buyers per cycle")
    parser.add_argument(
        "--seats", type=int, help="seats of each of a cycle's 2 dates (default: enough)"
    )
    parser.add_argument("--seats-per-payment", type=int, default=2)
    parser.add_argument(
        "--answer-bound",
        type=float,
        default=10.0,
        help="seconds a request may wait for its answer (the buyers' timeout)",
    )
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--summary-json", type=Path, help="also write the cycles as JSON here")
    args = parser.parse_args(argv)
    assert args.database in DATABASE_KINDS
    options = Options(
        cycles=args.cycles,
        seconds=args.seconds,
        database=args.database,
        buyers=args.buyers,
        seats=args.seats or max(500, int(args.seconds * SEATS_PER_SECOND)),
        seats_per_payment=args.seats_per_payment,
        answer_bound=args.answer_bound,
        seed=args.seed,
    )
    return options, args.summary_json


def main(argv: list[str] | None = None) -> int:
    options, summary_json = parse(argv)
    print(
        f"Soak: {options.cycles} cycles of {options.seconds:g} s on {options.database}, "
        f"{options.buyers} buyers, SIGKILL once a cycle (seed {options.seed})",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        scratch_database(options.database, Path(tmp)) as url,
    ):
        cycles = anyio.run(soak, options, Path(tmp), url)
    violations = sum(len(c.violations) for c in cycles)
    recoveries = [c.recovery_seconds for c in cycles] or [0.0]
    print(
        f"{'PASS' if violations == 0 else 'FAIL'}: {len(cycles)} cycles, "
        f"{sum(c.requests for c in cycles)} requests, {sum(c.payments for c in cycles)} "
        f"payments acknowledged, recovery {min(recoveries):.2f}-{max(recoveries):.2f} s, "
        f"{violations} violations"
    )
    if summary_json is not None:
        summary_json.write_text(
            json.dumps({"options": asdict(options), "cycles": [asdict(c) for c in cycles]})
        )
    return 0 if violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
