"""A power cut at every point of a payment: the disk keeps a prefix of the journal's commits.

`PowerCut` is the real SQL journal with one commit per queue entry that stops writing after
`survive` entries while still answering the engine as if it had written them. What is on
disk afterwards is exactly what a crash at that point leaves (a prefix of the commits, the
snapshots riding in the same order), so recovering from it for every `survive` from 0 to the
end covers every crash point of the flow, with snapshots taken after every turn: also the
date actors' snapshots taken while their seats are locked for the checkout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from sqlalchemy import Engine
from sqlmodel import SQLModel

from engine.domain.checkout import COMPLETED, STARTED
from engine.domain.seat_map import AVAILABLE, CHECKOUT, HELD, SOLD
from engine.system import EngineSystem
from persistence.catalog import upsert_concert
from persistence.database import connect, ensure_schema
from persistence.journal import SqlJournal
from tests.commands import charge, hold, join, pay
from tests.persistence.conftest import (
    CONCERT,
    DATE,
    OTHER_DATE,
    PRICE,
    catalog,
    engine_config,
    engine_on,
)
from tests.support import manual_clock

pytestmark = pytest.mark.anyio

CONFIG = engine_config(snapshot_every=1)
CHARGED = 1000


class PowerCut(SqlJournal):
    def __init__(self, engine: Engine, survive: int) -> None:
        super().__init__(engine, max_batch=1, linger=0)
        self.survive = survive
        self.entries = 0

    def _write(self, batch: list) -> None:  # type: ignore[type-arg]
        room = max(0, self.survive - self.entries)
        self.entries += len(batch)
        if room:
            super()._write(batch[:room])


@asynccontextmanager
async def engine_with_power_cut(url: str, survive: int) -> AsyncIterator[PowerCut]:
    engine = connect(url)
    ensure_schema(engine)
    for concert in catalog():
        upsert_concert(engine, concert)
    journal = PowerCut(engine, survive)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            system = EngineSystem(journal, config=CONFIG, clock=manual_clock(), catalog=catalog())
            async with system.running():
                await pay_for_two_dates(system)
            await journal.close()
        yield journal
    finally:
        engine.dispose()


async def pay_for_two_dates(system: EngineSystem) -> None:
    await join(system, "alice")
    await system.clock.advance(CONFIG.admit_interval_seconds)  # type: ignore[attr-defined]
    first = await hold(system, "alice", CONCERT, DATE, 5)
    await hold(system, "bob", CONCERT, DATE, 7)
    second = await hold(system, "alice", CONCERT, OTHER_DATE, 6)
    await charge(system, "alice", CHARGED, "topup")
    await pay(system, "alice", [first.reservation_id, second.reservation_id], "pay")


def seat(system: EngineSystem, date: str, number: int) -> tuple[str, str | None, str | None]:
    actor = system.date_actor(CONCERT, date)
    assert actor is not None
    found = actor.state.seats[number - 1]
    return found.status, found.user_id, found.payment_id


def assert_payment_is_all_or_nothing(system: EngineSystem) -> bool:
    """Invariants after recovery; returns whether alice's payment went through."""
    payments = [p for c in system.checkouts for p in c.state.payments.values()]
    assert all(p.status != STARTED for p in payments), "a checkout was left unresolved"
    for actor in system.date_actors():
        assert all(s.status != CHECKOUT for s in actor.state.seats), "a seat stayed locked"
    wallet = system.wallet_actor("alice").state
    assert wallet.charged_total == sum(wallet.balances.values()) + wallet.debited_total
    first, second = seat(system, DATE, 5), seat(system, OTHER_DATE, 6)
    sold = first[0] == SOLD
    assert (second[0] == SOLD) == sold, "one date sold without the other"
    debits = [amount for user, amount in wallet.debits.values() if user == "alice"]
    if sold:
        assert first[1] == second[1] == "alice"
        assert first[2] == second[2]
        [payment] = [p for p in payments if p.payment_id == first[2]]
        assert payment.status == COMPLETED and payment.amount == 2 * PRICE
        assert debits == [2 * PRICE], "seats sold without (or with double) money taken"
        token = system.room.state
        assert token.status_of(token.seq_of["alice"]) == "COMPLETED"
    else:
        assert debits == [], "money taken without a seat"
        for status, user, _ in (first, second):
            assert status == AVAILABLE or (status == HELD and user == "alice")
    bob = seat(system, DATE, 7)
    assert bob[0] == AVAILABLE or bob[:2] == (HELD, "bob")
    return sold


async def test_a_crash_at_any_commit_of_a_payment_leaves_it_all_or_nothing(
    database_url: str,
) -> None:
    async with engine_with_power_cut(database_url, survive=10**9) as whole:
        total = whole.entries
    outcomes = []
    for survive in range(total + 1):
        engine = connect(database_url)
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
        async with engine_with_power_cut(database_url, survive):
            pass
        async with engine_on(database_url, manual_clock(), CONFIG) as system:
            outcomes.append(assert_payment_is_all_or_nothing(system))
    assert total > 20  # records and snapshots of every step of the flow
    assert outcomes[-1] is True and outcomes[0] is False
    assert outcomes == sorted(outcomes)  # once the debit is on disk, the sale survives
