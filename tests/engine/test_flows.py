"""The seed's flows end to end through the engine, on a manual clock."""

from __future__ import annotations

import pytest

from engine.clock import ManualClock
from engine.errors import Refused
from engine.system import EngineSystem
from tests.engine.conftest import CONCERT, DATE, PRICE, admitted

pytestmark = pytest.mark.anyio


async def test_joining_twice_returns_the_same_token(system: EngineSystem) -> None:
    first = await system.join("alice")
    second = await system.join("alice")
    assert first.token == second.token
    assert first.status == "WAITING"


async def test_first_batch_is_admitted_and_a_payment_completes_the_token(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "alice")
    view = system.lookup_token((await system.join("alice")).token)
    assert view is not None and view.status == "PROCESSING"

    hold = await system.hold("alice", CONCERT, DATE, 7)
    assert hold.status == "HELD"
    assert await system.charge("alice", 500, "k1") == 500
    result = await system.pay("alice", [hold.reservation_id], "p1")
    assert result.amount == PRICE
    assert result.balance == 500 - PRICE
    assert [r.status for r in result.reservations] == ["SOLD"]
    after = system.lookup_token(view.token)
    assert after is not None and after.status == "COMPLETED"


async def test_second_hold_on_same_seat_is_refused(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "alice", "bob")
    await system.hold("alice", CONCERT, DATE, 3)
    with pytest.raises(Refused) as refused:
        await system.hold("bob", CONCERT, DATE, 3)
    assert refused.value.code == "SEAT_TAKEN"
