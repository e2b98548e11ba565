"""The payment saga under a fault at every commit of its flow, one commit at a time.

For each journal append a payment makes (its start, each date's lock, the debit, each sale,
the token's completion, its own completion), the payment runs again on a fresh engine with
that one append failing, or landing with its acknowledgement lost. Whatever the buyer was
told, once the engine has settled: every sold seat has a completed payment that names it,
no money is taken without its record, the buyer's retry with the same Idempotency-Key gets
the payment's real outcome and pays exactly once, and a restart from the journal agrees.
"""

from __future__ import annotations

import pytest

from engine.actors import checkout
from engine.clock import ManualClock
from engine.config import EngineConfig
from engine.domain.checkout import COMPLETED, STARTED
from engine.domain.seat_map import CHECKOUT, SOLD
from engine.errors import EngineError
from engine.journal import MemoryJournal
from engine.system import EngineSystem
from engine.views import PaymentResult
from tests.commands import charge, hold, join, pay
from tests.engine.conftest import CONCERT, DATE, OTHER_DATE, PRICE, admitted, catalog
from tests.support import manual_clock

pytestmark = pytest.mark.anyio

CHARGED = 1_000
KEY = "pay-1"
# The appends of a payment for two dates: its start, the two locks, the debit, the two sales,
# the token's completion, the payment's completion.
STEPS = 8
COMPLETION = 7


async def appends_of_a_clean_payment(config: EngineConfig) -> int:
    journal = MemoryJournal()
    clock = manual_clock()
    system = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with system.running():
        _, rids = await ready_to_pay(system, clock)
        before = journal.appends
        await pay(system, "ann", rids, KEY)
        return journal.appends - before


async def ready_to_pay(system: EngineSystem, clock: ManualClock) -> tuple[str, list[str]]:
    await admitted(system, clock, "ann")
    token = (await join(system, "ann")).token
    await charge(system, "ann", CHARGED, "top-up")
    first = await hold(system, "ann", CONCERT, DATE, 1)
    second = await hold(system, "ann", CONCERT, OTHER_DATE, 2)
    return token, [first.reservation_id, second.reservation_id]


async def settle(clock: ManualClock) -> None:
    """Let rebuilds and the scheduled `Resolve`s run (a few RESOLVE_AFTER periods)."""
    for _ in range(4):
        await clock.advance(checkout.RESOLVE_AFTER)


async def retry_same_key(system: EngineSystem, token: str, rids: list[str]) -> PaymentResult:
    view = system.token(token)
    assert view is not None
    return await pay(system, "ann", rids, KEY, view.status)


def assert_the_books_balance(system: EngineSystem) -> PaymentResult | None:
    """The invariants a fault must never break; returns nothing, raises on a violation."""
    payments = {p.payment_id: p for c in system.checkouts for p in c.state.payments.values()}
    assert all(p.status != STARTED for p in payments.values()), "a payment left unsettled"
    completed = {pid: p for pid, p in payments.items() if p.status == COMPLETED}
    for actor in system.date_actors():
        for seat in actor.state.seats:
            assert seat.status != CHECKOUT, "a seat left locked"
            if seat.status == SOLD:
                payment = completed.get(seat.payment_id or "")
                assert payment is not None, "a seat sold with no completed payment"
                assert seat.reservation_id in payment.reservation_ids
    wallet = system.wallet_actor("ann").state
    for pid, (_, amount) in wallet.debits.items():
        assert pid in completed, "money taken without its payment's record"
        assert completed[pid].amount == amount
    assert wallet.charged_total == sum(wallet.balances.values()) + wallet.debited_total
    assert len(completed) <= 1, "paid twice"
    return None


@pytest.mark.parametrize("landed", [False, True], ids=["commit-fails", "ack-lost"])
async def test_a_fault_at_any_commit_of_a_payment_keeps_the_books_and_the_retry_honest(
    config: EngineConfig, landed: bool
) -> None:
    assert await appends_of_a_clean_payment(config) == STEPS
    for step in range(STEPS):
        journal = MemoryJournal()
        clock = manual_clock()
        system = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
        async with system.running():
            token, rids = await ready_to_pay(system, clock)
            journal.fail_append(journal.appends + step, landed=landed)
            try:
                told: PaymentResult | None = await pay(system, "ann", rids, KEY)
            except EngineError:
                told = None  # a 503: the buyer retries with the same key
            await settle(clock)
            assert_the_books_balance(system)
            retried = await retry_same_key(system, token, rids)
            if told is not None:
                assert retried.payment_id == told.payment_id, f"step {step}"
            assert system.balance("ann") == CHARGED - 2 * PRICE, f"step {step}"
            assert [r.status for r in retried.reservations] == [SOLD, SOLD]
            assert_the_books_balance(system)
        revived = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
        async with revived.running():
            assert_the_books_balance(revived)
            assert revived.balance("ann") == CHARGED - 2 * PRICE
            again = await retry_same_key(revived, token, rids)
            assert again.payment_id == retried.payment_id


async def test_a_same_key_retry_of_an_interrupted_payment_gets_its_outcome_at_once(
    system: EngineSystem, journal: MemoryJournal, clock: ManualClock
) -> None:
    token, rids = await ready_to_pay(system, clock)
    # The completion's commit is lost: the buyer hears 503 though the money and seats moved.
    journal.fail_append(journal.appends + COMPLETION)
    with pytest.raises(EngineError):
        await pay(system, "ann", rids, KEY)
    await clock.advance(0)  # the checkout rebuilds; its Resolve is not due yet
    retried = await retry_same_key(system, token, rids)
    assert [r.status for r in retried.reservations] == [SOLD, SOLD]
    assert system.balance("ann") == CHARGED - 2 * PRICE


async def test_an_idempotency_key_reused_for_other_reservations_is_a_conflict(
    system: EngineSystem, clock: ManualClock
) -> None:
    _, rids = await ready_to_pay(system, clock)
    await pay(system, "ann", rids[:1], KEY)
    with pytest.raises(EngineError) as conflict:
        await pay(system, "ann", rids, KEY)
    assert conflict.value.code == "IDEMPOTENCY_CONFLICT"


async def test_a_charge_key_reused_for_another_amount_is_a_conflict(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", 100, "k")
    with pytest.raises(EngineError) as conflict:
        await charge(system, "ann", 200, "k")
    assert conflict.value.code == "IDEMPOTENCY_CONFLICT"


async def test_a_charge_retried_after_paying_is_answered_from_its_record(
    system: EngineSystem, clock: ManualClock
) -> None:
    token, rids = await ready_to_pay(system, clock)
    await pay(system, "ann", rids, KEY)
    view = system.token(token)
    assert view is not None and view.status == "COMPLETED"
    assert await charge(system, "ann", CHARGED, "top-up", view.status) == CHARGED
    with pytest.raises(EngineError) as refused:
        await charge(system, "ann", 5, "another", view.status)
    assert refused.value.code == "TOKEN_COMPLETED"
