"""The seed's flows end to end through the engine, on a manual clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from engine.actors import checkout
from engine.clock import ManualClock
from engine.config import EngineConfig
from engine.domain.checkout import Payment
from engine.errors import ActorUnavailable, EngineError, JournalFailed, Refused
from engine.journal import CommitTicket, JournalRecord, MemoryJournal
from engine.system import EngineSystem
from engine.views import Reservation
from tests.commands import charge, hold, join, pay, release
from tests.engine.conftest import CONCERT, DATE, OTHER_DATE, PRICE, admitted, catalog

pytestmark = pytest.mark.anyio


async def test_joining_twice_returns_the_same_token(system: EngineSystem) -> None:
    first = await join(system, "alice")
    second = await join(system, "alice")
    assert first.token == second.token
    assert first.status == "WAITING"
    assert (first.new, second.new) == (True, False)


async def test_first_batch_is_admitted_and_a_payment_completes_the_token(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "alice")
    view = system.token((await join(system, "alice")).token)
    assert view is not None and view.status == "PROCESSING"

    held = await hold(system, "alice", CONCERT, DATE, 7)
    assert held.status == "HELD"
    assert await charge(system, "alice", 500, "k1") == 500
    result = await pay(system, "alice", [held.reservation_id], "p1")
    assert result.amount == PRICE
    assert result.balance == 500 - PRICE
    assert [r.status for r in result.reservations] == ["SOLD"]
    after = system.token(view.token)
    assert after is not None and after.status == "COMPLETED"


async def test_paying_frees_the_other_holds_a_completed_token_can_no_longer_pay(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", 1_000)
    paid = await hold(system, "ann", CONCERT, DATE, 1)
    await hold(system, "ann", CONCERT, OTHER_DATE, 2)
    await pay(system, "ann", [paid.reservation_id])
    assert [(r.seat, r.status) for r in system.reservations("ann")] == [(1, "SOLD")]
    assert seat_status(system, 2, OTHER_DATE) == "AVAILABLE"


async def test_second_hold_on_same_seat_is_refused(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "alice", "bob")
    await hold(system, "alice", CONCERT, DATE, 3)
    with pytest.raises(Refused) as refused:
        await hold(system, "bob", CONCERT, DATE, 3)
    assert refused.value.code == "SEAT_TAKEN"


async def test_rank_moves_up_after_each_admission(
    journal: MemoryJournal, clock: ManualClock
) -> None:
    config = EngineConfig(
        admit_batch=2, admit_interval_seconds=10, wallet_shards=1, checkout_shards=1
    )
    engine = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with engine.running():
        tokens = [(await join(engine, f"u{i}")).token for i in range(5)]
        await clock.advance(10)  # the first admission is due at once, the next 10 s later
        ranks = [view.rank for view in map(engine.token, tokens) if view]
        assert ranks == [None, None, 1, 2, 3]
        await clock.advance(10)
        statuses = [view.status for view in map(engine.token, tokens) if view]
        assert statuses == ["PROCESSING"] * 4 + ["WAITING"]
        last = engine.token(tokens[4])
        assert last is not None and last.rank == 1 and last.eta_seconds == 10.0


async def test_gate_reads_waiting_processing_expired_and_forged_tokens(
    system: EngineSystem, clock: ManualClock
) -> None:
    ann = await join(system, "ann")
    assert status(system, ann.token) == "WAITING"
    await clock.advance(10)
    assert status(system, ann.token) == "PROCESSING"
    await clock.advance(600)  # ACTIVE_TTL
    assert status(system, ann.token) == "EXPIRED"
    assert system.token(ann.token[:-2] + "xx") is None
    assert system.token("not-a-token") is None


async def test_active_window_expires_exactly_at_its_ttl(
    system: EngineSystem, clock: ManualClock
) -> None:
    ann = await join(system, "ann")
    await clock.advance(10)
    view = system.token(ann.token)
    assert view is not None and view.active_until == clock.now() + 600
    await clock.advance(599.999)
    assert status(system, ann.token) == "PROCESSING"
    await clock.advance(0.001)
    assert status(system, ann.token) == "EXPIRED"


async def test_holds_are_freed_when_the_active_window_runs_out(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await hold(system, "ann", CONCERT, DATE, 4)
    await hold(system, "ann", CONCERT, OTHER_DATE, 5)
    await clock.advance(301)  # those two lapsed; the window ends 299 s from now ...
    late = await hold(system, "ann", CONCERT, DATE, 6)  # ... before this hold would
    await clock.advance(299)
    assert late.expires_at is not None and late.expires_at > clock.now()
    assert seat_status(system, 6) == "AVAILABLE"  # freed with the window
    assert system.reservations("ann") == ()


async def test_rejoining_after_completion_gets_a_new_token_at_the_back(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    first = await join(system, "ann")
    await charge(system, "ann", PRICE)
    held = await hold(system, "ann", CONCERT, DATE, 1)
    await pay(system, "ann", [held.reservation_id])
    await join(system, "bob")
    again = await join(system, "ann")
    assert again.token != first.token
    assert (again.status, again.rank) == ("WAITING", 2)
    assert status(system, first.token) == "COMPLETED"


async def test_hold_expires_exactly_at_the_deadline_on_the_actor_timer(
    system: EngineSystem, clock: ManualClock
) -> None:
    seen: list[str] = []
    system.subscribe(lambda key, events: seen.extend(e.kind for e in events))
    await admitted(system, clock, "ann", "bob")
    held = await hold(system, "ann", CONCERT, DATE, 5)
    assert held.expires_at == clock.now() + 300
    await clock.advance(299.999)
    assert seat_status(system, 5) == "HELD"
    await clock.advance(0.001)
    assert seat_status(system, 5) == "AVAILABLE"
    assert "seat.expired" in seen
    assert (await hold(system, "bob", CONCERT, DATE, 5)).user_id == "bob"


async def test_payment_on_an_expired_hold_takes_no_money(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", 1_000)
    held = await hold(system, "ann", CONCERT, DATE, 5)
    await clock.advance(300)
    with pytest.raises(Refused) as refused:
        await pay(system, "ann", [held.reservation_id])
    assert refused.value.code == "HOLD_EXPIRED"
    assert system.balance("ann") == 1_000
    assert seat_status(system, 5) == "AVAILABLE"


async def test_insufficient_balance_puts_the_holds_back(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", PRICE)
    first = await hold(system, "ann", CONCERT, DATE, 1)
    second = await hold(system, "ann", CONCERT, OTHER_DATE, 2)
    with pytest.raises(Refused) as refused:
        await pay(system, "ann", [first.reservation_id, second.reservation_id])
    assert refused.value.code == "INSUFFICIENT_BALANCE"
    assert system.balance("ann") == PRICE
    assert seat_status(system, 1) == "HELD"
    assert [r.status for r in system.reservations("ann")] == ["HELD", "HELD"]
    await charge(system, "ann", PRICE)
    paid = await pay(system, "ann", [first.reservation_id, second.reservation_id])
    assert paid.amount == 2 * PRICE and system.balance("ann") == 0


async def test_payment_with_the_same_key_is_made_once(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", 1_000)
    held = await hold(system, "ann", CONCERT, DATE, 1)
    first = await pay(system, "ann", [held.reservation_id], "key-1")
    again = await pay(system, "ann", [held.reservation_id], "key-1")
    assert again == first
    assert system.balance("ann") == 1_000 - PRICE


async def test_someone_elses_reservation_cannot_be_released_or_paid(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann", "bob")
    await charge(system, "bob", 1_000)
    held = await hold(system, "ann", CONCERT, DATE, 1)
    for attempt in (
        release(system, "bob", held.reservation_id),
        pay(system, "bob", [held.reservation_id]),
    ):
        with pytest.raises(Refused) as refused:
            await attempt
        assert refused.value.code == "NOT_OWNER"
    assert system.balance("bob") == 1_000


async def test_unknown_reservations_and_dates_are_not_found(
    system: EngineSystem, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    for attempt in (
        hold(system, "ann", CONCERT, "2030-01-01", 1),
        release(system, "ann", "nonsense"),
        pay(system, "ann", ["aurora.2030-01-01.1.1"]),
    ):
        with pytest.raises(Refused) as refused:
            await attempt
        assert refused.value.code == "NOT_FOUND"


async def test_failed_commit_during_payment_takes_no_money(
    system: EngineSystem, journal: MemoryJournal, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", 1_000)
    held = await hold(system, "ann", CONCERT, DATE, 1)
    journal.fail_next(1)  # the checkout's start: nothing else may happen for the payment
    with pytest.raises(EngineError):
        await pay(system, "ann", [held.reservation_id])
    await clock.advance(0)
    assert system.balance("ann") == 1_000
    assert seat_status(system, 1) == "HELD"
    paid = await pay(system, "ann", [held.reservation_id])
    assert paid.balance == 1_000 - PRICE


async def test_a_failed_commit_of_the_debit_is_retried_and_charges_once(
    system: EngineSystem, journal: MemoryJournal, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    await charge(system, "ann", 1_000)
    held = await hold(system, "ann", CONCERT, DATE, 1)
    appended = journal.append

    def fail_first_debit(records: Sequence[JournalRecord]) -> CommitTicket:
        if any(r.event.kind == "wallet.debited" for r in records) and not failed:
            failed.append(True)
            journal.fail_next(1)
        return appended(records)

    failed: list[bool] = []
    journal.append = fail_first_debit  # type: ignore[method-assign]
    paid = await pay(system, "ann", [held.reservation_id])
    assert failed == [True]
    assert paid.balance == system.balance("ann") == 1_000 - PRICE
    assert seat_status(system, 1) == "SOLD"


async def settle_an_unconfirmed_debit(
    system: EngineSystem,
    journal: MemoryJournal,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    mishap: Callable[[], None],
) -> tuple[Reservation, Payment]:
    """Ann pays for a held seat and `mishap` befalls the journal as her debit is appended; the
    checkout gives up on it at once (RETRIES is 1), so the payment stays STARTED until the
    checkout resolves it RESOLVE_AFTER later. Her hold, and the payment as then settled."""
    monkeypatch.setattr(checkout, "RETRIES", 1)
    await admitted(system, clock, "ann")
    await charge(system, "ann", 1_000)
    held = await hold(system, "ann", CONCERT, DATE, 1)
    appended = journal.append

    def append(records: Sequence[JournalRecord]) -> CommitTicket:
        if any(r.event.kind == "wallet.debited" for r in records):
            mishap()
        return appended(records)

    journal.append = append  # type: ignore[method-assign]
    with pytest.raises(JournalFailed):
        await pay(system, "ann", [held.reservation_id])
    journal.append = appended  # type: ignore[method-assign]
    assert seat_status(system, 1) == "CHECKOUT"  # the money may have moved: nobody else buys
    [payment] = system.checkout_actor("ann").state.payments.values()
    assert payment.status == "STARTED"
    await clock.advance(checkout.RESOLVE_AFTER)
    [payment] = system.checkout_actor("ann").state.payments.values()
    return held, payment


async def test_a_payment_whose_debit_was_not_recorded_is_settled_without_a_restart(
    system: EngineSystem,
    journal: MemoryJournal,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held, payment = await settle_an_unconfirmed_debit(
        system, journal, clock, monkeypatch, journal.fail_next
    )
    assert payment.status == "FAILED"
    assert seat_status(system, 1) == "HELD"
    assert system.balance("ann") == 1_000
    paid = await pay(system, "ann", [held.reservation_id])
    assert paid.balance == 1_000 - PRICE


async def test_a_payment_whose_debit_landed_unconfirmed_completes_without_a_restart(
    system: EngineSystem,
    journal: MemoryJournal,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, payment = await settle_an_unconfirmed_debit(
        system, journal, clock, monkeypatch, journal.lose_next_acks
    )
    assert payment.status == "COMPLETED"
    assert seat_status(system, 1) == "SOLD"
    assert system.balance("ann") == 1_000 - PRICE  # taken once, with the seat given


async def test_checkout_interrupted_after_the_debit_completes_at_recovery(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    payment_id = await pay_then_cut_journal_after(journal, clock, config, "wallet.debited")
    revived = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with revived.running():
        assert seat_status(revived, 1) == "SOLD"
        assert revived.balance("ann") == 1_000 - PRICE
        token = await join(revived, "ann")
        assert token.status == "WAITING"  # the old token was completed; this is a new one
        checkout = revived.checkout_actor("ann").state.payments[payment_id]
        assert checkout.status == "COMPLETED"


async def test_checkout_interrupted_before_the_debit_is_cancelled_at_recovery(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    await pay_then_cut_journal_after(journal, clock, config, "seats.locked")
    revived = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with revived.running():
        assert seat_status(revived, 1) == "HELD"
        assert revived.balance("ann") == 1_000
        token = await join(revived, "ann")
        assert token.status == "PROCESSING"


async def test_restart_replays_the_journal_into_the_same_state(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    engine = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with engine.running():
        await admitted(engine, clock, "ann", "bob")
        await charge(engine, "ann", 1_000, "k")
        await hold(engine, "bob", CONCERT, DATE, 9)
        held = await hold(engine, "ann", CONCERT, DATE, 1)
        await pay(engine, "ann", [held.reservation_id])
        token = (await join(engine, "bob")).token
    revived = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with revived.running():
        assert revived.balance("ann") == 1_000 - PRICE
        assert [seat_status(revived, n) for n in (1, 9)] == ["SOLD", "HELD"]
        assert status(revived, token) == "PROCESSING"


async def pay_then_cut_journal_after(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig, kind: str
) -> str:
    """Pay for one seat, then cut the journal after the first `kind` event, as a crash right
    after that commit would leave it. Returns the payment id."""
    engine = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with engine.running():
        await admitted(engine, clock, "ann")
        await charge(engine, "ann", 1_000)
        held = await hold(engine, "ann", CONCERT, DATE, 1)
        result = await pay(engine, "ann", [held.reservation_id])
    cut = next(i for i, r in enumerate(journal.records) if r.event.kind == kind)
    del journal.records[cut + 1 :]
    journal.snapshots.clear()
    return result.payment_id


def status(system: EngineSystem, token: str) -> str | None:
    view = system.token(token)
    return view.status if view else None


def seat_status(system: EngineSystem, seat: int, date: str = DATE) -> str:
    actor = system.date_actor(CONCERT, date)
    assert actor is not None
    return actor.state.seats[seat - 1].status


async def test_while_the_journal_is_down_commands_are_refused_at_once_and_reads_go_on(
    system: EngineSystem, journal: MemoryJournal, clock: ManualClock
) -> None:
    await admitted(system, clock, "ann")
    held = await hold(system, "ann", CONCERT, DATE, 1)
    journal.healthy = False
    with pytest.raises(ActorUnavailable):
        await hold(system, "ann", CONCERT, DATE, 2)
    with pytest.raises(ActorUnavailable):
        await charge(system, "ann", 100)
    await clock.advance(301)  # the hold lapses, but its expiry cannot be made durable yet
    assert seat_status(system, 1) == "HELD"
    assert [r.reservation_id for r in system.reservations("ann")] == [held.reservation_id]
    journal.healthy = True
    await clock.advance(1)  # the deferred timer turn runs once the journal commits again
    assert seat_status(system, 1) == "AVAILABLE"
    assert (await hold(system, "ann", CONCERT, DATE, 2)).status == "HELD"


class SlowAdmissions(MemoryJournal):
    """Commits at once, except admissions, whose commit waits for `settle_admissions`."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[Sequence[JournalRecord], CommitTicket]] = []

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        if any(r.event.kind == "room.admitted" for r in records):
            ticket = CommitTicket()
            self.pending.append((records, ticket))
            return ticket
        return super().append(records)

    def settle_admissions(self, *, fail: bool) -> None:
        for records, ticket in self.pending:
            if fail:
                self._failed({r.actor_key for r in records})  # poisons the room: it rebuilds
                ticket.fail(JournalFailed("lost"))
            else:
                self.records.extend(records)
                ticket.resolve()
        self.pending.clear()


@pytest.mark.parametrize("fails", [False, True], ids=["commits", "fails"])
async def test_an_admission_shows_only_once_it_is_durable(
    clock: ManualClock, config: EngineConfig, fails: bool
) -> None:
    journal = SlowAdmissions()
    engine = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with engine.running():
        ann = await join(engine, "ann")
        await clock.advance(config.admit_interval_seconds)
        assert status(engine, ann.token) == "WAITING"  # admitted in memory, not yet durably
        journal.settle_admissions(fail=fails)
        await clock.advance(0)
        # A failed admission was taken back and is being made again (not yet durable either).
        assert status(engine, ann.token) == ("WAITING" if fails else "PROCESSING")
