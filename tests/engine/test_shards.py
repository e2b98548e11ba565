"""The engine cut into shards (engine/placement.py), the shards wired to each other in-process.

What the cluster runs in separate processes, here in one: each shard has its own journal and
builds only the actors it owns; a command for another shard's actor goes to that shard. The
payment saga then spans shards (the checkout on one, the dates and the wallet on others), and
every promise must hold as in one process, also when a shard stops mid-payment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import pytest

from engine.actors.checkout import checkout_key
from engine.actors.wallet import shard_of, wallet_key
from engine.catalog import ConcertDateInfo, ConcertInfo, date_key
from engine.clock import ManualClock
from engine.commands import Command
from engine.config import EngineConfig
from engine.errors import EngineError
from engine.journal import CommitTicket, JournalRecord, MemoryJournal
from engine.placement import Placement
from engine.system import EngineSystem
from tests.commands import charge, hold, join, pay, room_durable

pytestmark = pytest.mark.anyio

R = TypeVar("R")
SHARDS = 3
CONCERT = "tour"
DATES = [f"2031-05-{day:02d}" for day in range(1, 13)]
PRICE = 50


class LocalPeers:
    """Every shard of the test, reached directly."""

    def __init__(self) -> None:
        self.shards: dict[int, EngineSystem] = {}

    async def ask(self, shard: int, command: Command[R]) -> R:
        return await self.shards[shard].ask(command)

    async def release_holds(self, user_id: str) -> None:
        for system in self.shards.values():
            system.release_local_holds(user_id)


def catalog() -> list[ConcertInfo]:
    dates = tuple(ConcertDateInfo(CONCERT, day, 20, PRICE) for day in DATES)
    return [ConcertInfo(CONCERT, "Tour", "Arena", dates)]


@asynccontextmanager
async def shards(
    journals: dict[int, MemoryJournal], clock: ManualClock, config: EngineConfig
) -> AsyncIterator[LocalPeers]:
    peers = LocalPeers()
    async with AsyncExitStack() as stack:
        for shard in range(SHARDS):
            system = EngineSystem(
                journals[shard],
                config=config,
                clock=clock,
                catalog=catalog(),
                placement=Placement(SHARDS, shard),
                peers=peers,
            )
            peers.shards[shard] = system
        for system in peers.shards.values():
            await stack.enter_async_context(system.running())
        yield peers


def dates_on_two_shards() -> list[str]:
    """Two dates owned by different shards."""
    placement = Placement(SHARDS)
    first = DATES[0]
    other = next(
        d
        for d in DATES
        if placement.shard_of(date_key(CONCERT, d)) != placement.shard_of(date_key(CONCERT, first))
    )
    return [first, other]


def owner_of(peers: LocalPeers, key: str) -> EngineSystem:
    return peers.shards[Placement(SHARDS).shard_of(key)]


async def test_each_shard_builds_only_the_actors_it_owns(
    clock: ManualClock, config: EngineConfig
) -> None:
    journals = {n: MemoryJournal() for n in range(SHARDS)}
    async with shards(journals, clock, config) as peers:
        keys = [a.key for s in peers.shards.values() for a in s.all_actors()]
        assert len(keys) == len(set(keys))  # no actor twice
        assert len(keys) == 1 + len(DATES) + config.wallet_shards + config.checkout_shards
        for shard, system in peers.shards.items():
            assert all(Placement(SHARDS).shard_of(a.key) == shard for a in system.all_actors())


async def test_a_payment_spanning_shards_sells_both_dates_and_takes_the_money_once(
    clock: ManualClock, config: EngineConfig
) -> None:
    journals = {n: MemoryJournal() for n in range(SHARDS)}
    first, second = dates_on_two_shards()
    async with shards(journals, clock, config) as peers:
        entry = peers.shards[0]  # any shard takes any command
        token = await join(entry, "ann")
        await clock.advance(config.admit_interval_seconds)
        await room_durable(entry)
        await charge(entry, "ann", 1_000, "top-up")
        held = [await hold(entry, "ann", CONCERT, day, 3) for day in (first, second)]
        paid = await pay(entry, "ann", [h.reservation_id for h in held], "pay-1")
        assert paid.amount == 2 * PRICE and paid.balance == 1_000 - 2 * PRICE
        assert sorted(r.status for r in paid.reservations) == ["SOLD", "SOLD"]
        room = owner_of(peers, "waiting-room")
        view = room.token(token.token)
        assert view is not None and view.status == "COMPLETED"
        again = await pay(peers.shards[SHARDS - 1], "ann", [h.reservation_id for h in held],
                          "pay-1", view.status)  # fmt: skip
        assert again.payment_id == paid.payment_id  # from any shard, the payment's outcome


async def test_paying_releases_the_buyers_other_holds_on_every_shard(
    clock: ManualClock, config: EngineConfig
) -> None:
    journals = {n: MemoryJournal() for n in range(SHARDS)}
    first, second = dates_on_two_shards()
    async with shards(journals, clock, config) as peers:
        entry = peers.shards[0]
        await join(entry, "bo")
        await clock.advance(config.admit_interval_seconds)
        await room_durable(entry)
        await charge(entry, "bo", 500)
        bought = await hold(entry, "bo", CONCERT, first, 1)
        await hold(entry, "bo", CONCERT, second, 1)
        await pay(entry, "bo", [bought.reservation_id])
        await clock.advance(0)
        left = owner_of(peers, date_key(CONCERT, second)).seat_map(CONCERT, second)
        assert left is not None and left.seats[0].status == "AVAILABLE"


class StopsAfterLocking(MemoryJournal):
    """A shard's journal that, once the shard has locked seats for a payment, stops every
    actor of the shard (as if its process had died right then)."""

    def __init__(self) -> None:
        super().__init__()
        self.system: EngineSystem | None = None
        self.stopped = False

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        ticket = super().append(records)
        locked = any(r.event.kind == "seats.locked" for r in records)
        if locked and self.system is not None and not self.stopped:
            self.stopped = True
            for actor in self.system.all_actors():
                actor.close()
        return ticket


async def test_a_shard_that_stops_after_locking_is_sold_by_the_checkout_once_it_is_back(
    clock: ManualClock, config: EngineConfig
) -> None:
    """The date's shard goes away once the seat is locked: the checkout takes the money but
    cannot sell the seat now; once that shard is back, the checkout's Resolve sells it."""
    first, _ = dates_on_two_shards()
    placement = Placement(SHARDS)
    date_shard = placement.shard_of(date_key(CONCERT, first))
    checkout_shard = placement.shard_of(checkout_key(shard_of("cy", config.checkout_shards)))
    wallet_shard = placement.shard_of(wallet_key(shard_of("cy", config.wallet_shards)))
    if date_shard in (checkout_shard, wallet_shard):
        pytest.skip("the hash put the date with the checkout or the wallet")
    journals: dict[int, MemoryJournal] = {n: MemoryJournal() for n in range(SHARDS)}
    stopping = journals[date_shard] = StopsAfterLocking()
    peers = LocalPeers()

    def build(shard: int) -> EngineSystem:
        system = EngineSystem(
            journals[shard],
            config=config,
            clock=clock,
            catalog=catalog(),
            placement=Placement(SHARDS, shard),
            peers=peers,
        )
        peers.shards[shard] = system
        return system

    async with AsyncExitStack() as stack:
        for shard in range(SHARDS):
            if shard != date_shard:
                await stack.enter_async_context(build(shard).running())
        async with build(date_shard).running() as dates:
            entry = peers.shards[checkout_shard]
            await join(entry, "cy")
            await clock.advance(config.admit_interval_seconds)
            await room_durable(entry)
            await charge(entry, "cy", 500)
            reservation = await hold(entry, "cy", CONCERT, first, 7)
            stopping.system = dates
            with pytest.raises(EngineError):  # the sale could not be done now
                await pay(entry, "cy", [reservation.reservation_id], "pay-9")
            assert stopping.stopped
        assert peers.shards[wallet_shard].balance("cy") == 500 - PRICE  # the money is taken
        async with build(date_shard).running() as dates:  # the shard comes back
            for _ in range(3):
                await clock.advance(6)
            seat_map = dates.seat_map(CONCERT, first)
            assert seat_map is not None and seat_map.seats[6].status == "SOLD"
            payments = [
                p for c in peers.shards[checkout_shard].checkouts for p in c.state.payments.values()
            ]
            assert [p.status for p in payments] == ["COMPLETED"]
