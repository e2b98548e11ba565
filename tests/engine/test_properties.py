"""Property tests: random interleavings of holds, releases, expiries, charges and payments.

Each example runs the real engine on a manual clock and fires its commands in concurrent
batches, then checks the invariants a ticketing system lives by.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.config import EngineConfig
from engine.domain.seat_map import SOLD, HoldExpired, HoldReleased, SeatHeld, SeatsSold
from engine.domain.wallet import Debited
from engine.errors import EngineError
from engine.journal import MemoryJournal
from engine.system import EngineSystem
from tests.commands import charge, hold, join, pay, release
from tests.support import manual_clock

USERS = [f"user{i}" for i in range(6)]
DATES = ["2027-02-01", "2027-02-02"]
SEATS = 4
PRICE = 30

# (what, user, date, number): number is a seat, an index, an amount or seconds.
Op = tuple[str, str, str, int]
users, dates = st.sampled_from(USERS), st.sampled_from(DATES)
op = st.one_of(
    st.tuples(st.just("hold"), users, dates, st.integers(1, SEATS)),
    st.tuples(st.just("release"), users, st.just(""), st.integers(0, 3)),
    st.tuples(st.just("charge"), users, st.just(""), st.integers(1, 100)),
    st.tuples(st.just("pay"), users, st.just(""), st.integers(1, 3)),
    st.tuples(st.just("advance"), st.just(""), st.just(""), st.sampled_from([1, 10, 29, 30])),
)
Script = list[list[Op]]
batches = st.lists(st.lists(op, min_size=1, max_size=6), min_size=1, max_size=12)


@dataclass
class Ledger:
    """What the callers were told: the only truth an outside observer has."""

    charged: int = 0
    paid: int = 0
    payments: dict[str, int] = field(default_factory=dict)


async def play(script: Script) -> tuple[EngineSystem, Ledger, MemoryJournal]:
    clock = manual_clock()
    journal = MemoryJournal()
    config = EngineConfig(
        hold_seconds=30,
        max_holds_per_user=2,
        admit_batch=100,
        admit_interval_seconds=1,
        active_ttl_seconds=10_000,
        wallet_shards=2,
        checkout_shards=2,
    )
    concert = ConcertInfo("c", "C", "", tuple(ConcertDateInfo("c", d, SEATS, PRICE) for d in DATES))
    system = EngineSystem(journal, config=config, clock=clock, catalog=[concert])
    ledger = Ledger()

    def held(user: str) -> list[str]:
        return [r.reservation_id for r in system.reservations(user) if r.status == "HELD"]

    async def run_op(what: str, user: str, date: str, n: int) -> None:
        try:
            if what == "hold":
                await hold(system, user, "c", date, n)
            elif what == "release" and held(user):
                await release(system, user, held(user)[n % len(held(user))])
            elif what == "charge":
                await charge(system, user, n)
                ledger.charged += n
            elif what == "pay" and held(user):
                result = await pay(system, user, held(user)[:n])
                ledger.paid += result.amount
                ledger.payments[result.payment_id] = result.amount
        except EngineError:
            pass  # refusals are part of the game; the invariants judge the outcome

    async with system.running():
        for user in USERS:
            await join(system, user)
        await clock.advance(1)
        for batch in script:
            async with anyio.create_task_group() as tg:
                for what, user, date, n in batch:
                    if what == "advance":
                        await clock.advance(n)
                    else:
                        tg.start_soon(run_op, what, user, date, n)
            check_invariants(system, ledger, journal)
    return system, ledger, journal


def check_invariants(system: EngineSystem, ledger: Ledger, journal: MemoryJournal) -> None:
    # Money is conserved: every acknowledged charge is either on a balance or paid for seats.
    balances = [system.balance(u) for u in USERS]
    assert min(balances) >= 0, "a balance went negative"
    assert ledger.charged == sum(balances) + ledger.paid

    # Replay the journal: a seat is held by one user at a time and sold at most once.
    holder: dict[tuple[str, int], str] = {}
    sold: Counter[tuple[str, int]] = Counter()
    debits: dict[str, int] = {}
    sold_value: dict[str, int] = {}
    for record in journal.records:
        event = record.event
        match event:
            case SeatHeld(seat=seat, user_id=user):
                assert (record.actor_key, seat) not in holder, "a seat held by two users"
                holder[(record.actor_key, seat)] = user
            case HoldReleased(seat=seat) | HoldExpired(seat=seat):
                holder.pop((record.actor_key, seat))
            case SeatsSold(payment_id=pid, seats=seats):
                for seat in seats:
                    sold[(record.actor_key, seat)] += 1
                    sold_value[pid] = sold_value.get(pid, 0) + PRICE
            case Debited(payment_id=pid, amount=amount):
                debits[pid] = amount
    assert all(count == 1 for count in sold.values()), "a seat sold twice"

    # No payment without sold seats, no sold seat without a payment.
    assert debits == sold_value
    assert ledger.payments == debits
    for actor in system.date_actors():
        for sold_seat in actor.state.seats:
            if sold_seat.status == SOLD:
                assert sold_seat.payment_id in debits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_random_interleavings_keep_seats_single_and_money_conserved(
    anyio_backend: str, script: Script
) -> None:
    anyio.run(play, script, backend=anyio_backend)
