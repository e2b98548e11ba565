"""Recovery through the real engine: stop an engine on the SQL journal, start a new one on the
same database, and find every actor as it was (or as the passing of time has made it)."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import text

from engine.commands import CompleteToken
from engine.domain.seat_map import AVAILABLE, HELD, SOLD
from engine.errors import JournalFailed, Refused
from engine.system import EngineSystem
from persistence import open_store
from tests.commands import charge, hold, join, pay, release, room_durable
from tests.persistence.conftest import (
    CONCERT,
    DATE,
    OTHER_DATE,
    PRICE,
    durable_state,
    engine_config,
    engine_on,
)
from tests.support import manual_clock

pytestmark = pytest.mark.anyio


def seat_status(system: EngineSystem, date: str, seat: int) -> str:
    actor = system.date_actor(CONCERT, date)
    assert actor is not None
    return actor.state.seats[seat - 1].status


async def test_waiting_room_order_and_statuses_survive_a_restart(database_url: str) -> None:
    clock = manual_clock()
    config = engine_config(admit_batch=3)
    users = [f"user{n}" for n in range(8)]
    async with engine_on(database_url, clock, config) as system:
        tokens = [(await join(system, user)).token for user in users]
        await clock.advance(config.admit_interval_seconds)  # the first three are admitted
        await system.ask(CompleteToken("user1"))
        before = [system.token(token) for token in tokens]
    async with engine_on(database_url, clock, config) as system:
        after = [system.token(token) for token in tokens]
        assert after == before
        assert [view.status for view in after if view] == [
            "PROCESSING",
            "COMPLETED",
            "PROCESSING",
            *["WAITING"] * 5,
        ]
        assert [view.rank for view in after if view][3:] == [1, 2, 3, 4, 5]
        await clock.advance(config.admit_interval_seconds)  # admission goes on where it stopped
        await room_durable(system)
        assert [system.token(t).status for t in tokens[3:]] == [  # type: ignore[union-attr]
            *["PROCESSING"] * 3,
            *["WAITING"] * 2,
        ]


async def test_a_hold_keeps_its_absolute_expiry_across_a_restart(database_url: str) -> None:
    clock = manual_clock()
    async with engine_on(database_url, clock) as system:
        held = await hold(system, "alice", CONCERT, DATE, 4)
    await clock.advance(120)  # the server is down for two minutes
    async with engine_on(database_url, clock) as system:
        [again] = system.reservations("alice")
        assert again.reservation_id == held.reservation_id
        assert again.expires_at == held.expires_at
        assert seat_status(system, DATE, 4) == HELD
        await clock.advance(300 - 120 - 1)
        assert seat_status(system, DATE, 4) == HELD
        await clock.advance(1)
        assert seat_status(system, DATE, 4) == AVAILABLE


async def test_holds_that_lapsed_while_down_are_released_at_recovery(database_url: str) -> None:
    clock = manual_clock()
    async with engine_on(database_url, clock) as system:
        await hold(system, "alice", CONCERT, DATE, 1)
        await hold(system, "bob", CONCERT, DATE, 2)
    await clock.advance(301)
    async with engine_on(database_url, clock) as system:
        assert seat_status(system, DATE, 1) == AVAILABLE
        assert seat_status(system, DATE, 2) == AVAILABLE
        assert system.reservations("alice") == ()
        taken = await hold(system, "carol", CONCERT, DATE, 1)
        assert taken.status == HELD


async def test_balances_and_idempotency_keys_survive_a_restart(database_url: str) -> None:
    clock = manual_clock()
    async with engine_on(database_url, clock) as system:
        await charge(system, "alice", 300, "topup-1")
        await charge(system, "alice", 200, "topup-2")
        await charge(system, "bob", 50, None)
    async with engine_on(database_url, clock) as system:
        assert system.balance("alice") == 500
        assert system.balance("bob") == 50
        # A retry answers what the first charge answered and charges nothing.
        assert await charge(system, "alice", 300, "topup-1") == 300
        assert system.balance("alice") == 500
        with pytest.raises(Refused):
            await charge(system, "alice", 999, "topup-2")


async def test_an_event_the_journal_cannot_store_is_dropped_from_memory_too(
    database_url: str,
) -> None:
    clock = manual_clock()
    async with engine_on(database_url, clock) as system:
        await charge(system, "alice", 300, "topup-1")
        with pytest.raises(JournalFailed):
            await charge(system, "alice", 5, "\ud800")  # a lone surrogate: no UTF-8 for it
        with anyio.fail_after(5):  # the wallet rebuilds from what is durable, at once
            while system.balance("alice") != 300:
                await anyio.sleep(0.01)
        assert await charge(system, "alice", 5, "topup-2") == 305
    async with engine_on(database_url, clock) as system:
        assert system.balance("alice") == 305


async def test_a_completed_payment_survives_a_restart(database_url: str) -> None:
    clock = manual_clock()
    async with engine_on(database_url, clock) as system:
        await join(system, "alice")
        await clock.advance(system.config.admit_interval_seconds)
        first = await hold(system, "alice", CONCERT, DATE, 5)
        second = await hold(system, "alice", CONCERT, OTHER_DATE, 6)
        await charge(system, "alice", 1000, "k")
        paid = await pay(system, "alice", [first.reservation_id, second.reservation_id], "p")
    async with engine_on(database_url, clock) as system:
        assert seat_status(system, DATE, 5) == SOLD
        assert seat_status(system, OTHER_DATE, 6) == SOLD
        assert system.balance("alice") == 1000 - 2 * PRICE
        again = await pay(system, "alice", [first.reservation_id, second.reservation_id], "p")
        assert again.payment_id == paid.payment_id
        assert system.balance("alice") == 1000 - 2 * PRICE
        token = system.token((await join(system, "alice")).token)
        assert token is not None


@pytest.mark.parametrize("snapshot_every", [1, 3, 10_000])
async def test_snapshot_and_tail_rebuild_every_actor_exactly(
    database_url: str, snapshot_every: int
) -> None:
    clock = manual_clock()
    config = engine_config(snapshot_every=snapshot_every, admit_batch=4)
    async with engine_on(database_url, clock, config) as system:
        for n in range(10):
            await join(system, f"user{n}")
        await clock.advance(config.admit_interval_seconds)
        for n in range(6):
            await charge(system, f"user{n}", 100 * (n + 1), f"c{n}")
            await hold(system, f"user{n}", CONCERT, DATE, n + 1)
        await hold(system, "user0", CONCERT, OTHER_DATE, 9)
        await pay(system, "user2", [system.reservations("user2")[0].reservation_id], "p2")
        await release(system, "user3", system.reservations("user3")[0].reservation_id)
        with pytest.raises(Refused):
            await pay(system, "user0", [r.reservation_id for r in system.reservations("user0")])
        await clock.advance(30)
        before = durable_state(system)
    async with engine_on(database_url, clock, config) as system:
        assert durable_state(system) == before


async def test_actors_whose_snapshots_cannot_be_read_recover_from_all_their_events(
    database_url: str,
) -> None:
    clock = manual_clock()
    config = engine_config(snapshot_every=1, admit_batch=4)
    async with engine_on(database_url, clock, config) as system:
        for n in range(6):
            await join(system, f"user{n}")
        await clock.advance(config.admit_interval_seconds)
        for n in range(3):
            await charge(system, f"user{n}", 500, f"c{n}")
            await hold(system, f"user{n}", CONCERT, DATE, n + 1)
        await pay(system, "user1", [system.reservations("user1")[0].reservation_id], "p1")
        before = durable_state(system)
    async with open_store(database_url, seed_demo=False) as store:
        with store.engine.begin() as conn:
            # As a newer release would leave them, or a corrupt row.
            conn.execute(text("UPDATE snapshot SET state = '{\"version\": 99}'"))
            spoiled = conn.execute(text("SELECT count(*) FROM snapshot")).scalar_one()
    assert spoiled >= 4  # the waiting room, the date, a wallet and a checkout
    async with engine_on(database_url, clock, config) as system:
        assert durable_state(system) == before
