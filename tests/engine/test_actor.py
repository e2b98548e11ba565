"""The actor runtime: turns, supervision, overload, pipelining, journal failure, the timer."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import pytest

from engine.actor import Actor
from engine.clock import ManualClock, SystemClock
from engine.commands import Command
from engine.errors import HandlerCrashed, JournalFailed, Overloaded, Refused
from engine.events import Event, register
from engine.journal import CommitTicket, JournalRecord, MemoryJournal
from engine.views import Scalar
from tests.support import manual_clock, settle

pytestmark = pytest.mark.anyio


@register
@dataclass(frozen=True, slots=True)
class Added(Event):
    kind: ClassVar[str] = "test.added"
    amount: int


@register
@dataclass(frozen=True, slots=True)
class Rang(Event):
    kind: ClassVar[str] = "test.rang"
    at: float


@dataclass(frozen=True, slots=True)
class Add(Command[int]):
    amount: int


@dataclass(frozen=True, slots=True)
class Alarm(Command[None]):
    at: float


@dataclass(frozen=True, slots=True)
class Refuse(Command[None]):
    pass


@dataclass(frozen=True, slots=True)
class Crash(Command[None]):
    pass


@dataclass(frozen=True, slots=True)
class Sleep(Command[str]):
    event: anyio.Event


class Counter:
    def __init__(self) -> None:
        self.total = 0
        self.alarm: float | None = None
        self.rang: list[float] = []

    def apply(self, event: Event) -> None:
        match event:
            case Added(amount=amount):
                self.total += amount
            case Rang(at=at):
                self.rang.append(at)
                self.alarm = None

    def next_deadline(self) -> float | None:
        return self.alarm

    def to_snapshot(self) -> dict[str, Any]:
        return {"total": self.total}

    def summary(self) -> dict[str, Scalar]:
        return {"total": self.total}


class CounterActor(Actor[Counter]):
    kind = "wallet"  # any kind: a counter is a tiny wallet

    def initial_state(self) -> Counter:
        return Counter()

    def state_from_snapshot(self, data: dict[str, Any]) -> Counter:
        counter = Counter()
        counter.total = data["total"]
        return counter

    async def handle(self, command: Command[Any]) -> Any:
        match command:
            case Add(amount=amount):
                self.emit([Added(amount)])
                return self.state.total
            case Alarm(at=at):
                self.state.alarm = at
                return None
            case Refuse():
                raise Refused("NOPE", "refused")
            case Crash():
                raise ZeroDivisionError("boom")
            case Sleep(event=event):
                await event.wait()
                return "slept"
        raise TypeError(command)

    def on_expire_due(self, now: float) -> Any:
        if self.state.alarm is not None and now >= self.state.alarm:
            self.emit([Rang(now)])


class PlainCounterActor(CounterActor):
    """Turns that never await (`decide`): an idle one runs a turn in the asking task."""

    def __init__(self, journal: MemoryJournal, clock: ManualClock) -> None:
        super().__init__("plain", journal=journal, clock=clock)
        self.turned_in: list[str | None] = []

    def decide(self, command: Command[Any]) -> Any:
        self.turned_in.append(anyio.get_current_task().name)
        match command:
            case Add(amount=amount):
                self.emit([Added(amount)])
                return self.state.total
        raise TypeError(command)

    handle = Actor.handle  # every turn is `decide`


class GatedJournal(MemoryJournal):
    """A journal whose commits happen only when the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[tuple[Sequence[JournalRecord], CommitTicket]] = []

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        ticket = CommitTicket()
        self.queued.append((records, ticket))
        return ticket

    def commit_all(self) -> None:
        for records, ticket in self.queued:
            self.records.extend(records)
            ticket.resolve()
        self.queued.clear()

    def fail_all(self) -> None:
        keys = {r.actor_key for records, _ in self.queued for r in records}
        for _, ticket in self.queued:
            ticket.fail(JournalFailed("disk on fire"))
        self.queued.clear()
        for listener in self._listeners:
            listener(keys)


def counter(journal: MemoryJournal, clock: ManualClock, mailbox: int = 16) -> CounterActor:
    return CounterActor("counter", journal=journal, clock=clock, mailbox_size=mailbox)


async def test_handler_that_raises_answers_that_caller_and_the_actor_keeps_serving() -> None:
    actor = counter(MemoryJournal(), manual_clock())
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        with pytest.raises(HandlerCrashed):
            await actor.ask(Crash())
        with pytest.raises(Refused):
            await actor.ask(Refuse())
        assert await actor.ask(Add(2)) == 2
        assert actor.stats().errors == 1
        actor.close()


async def test_full_mailbox_answers_overloaded_at_once() -> None:
    actor = counter(MemoryJournal(), manual_clock(), mailbox=2)
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        tg.start_soon(actor.ask, Sleep(gate))
        await settle()  # the actor is busy in that turn
        actor.tell(Add(1))
        actor.tell(Add(1))
        with pytest.raises(Overloaded) as overloaded:
            actor.tell(Add(1))
        assert overloaded.value.retry_after > 0
        assert actor.stats().mailbox_depth == 2
        gate.set()
        await settle()  # the backlog drains
        assert await actor.ask(Add(1)) == 3
        actor.close()


async def test_an_idle_plain_actor_turns_in_the_asking_task() -> None:
    actor = PlainCounterActor(MemoryJournal(), manual_clock())
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run, name="actor")
        await settle()  # the actor waits on its empty mailbox
        assert await actor.ask(Add(2)) == 2
        assert actor.turned_in == [anyio.get_current_task().name]
        actor.close()


async def test_an_ask_behind_queued_commands_waits_its_turn_in_the_actor() -> None:
    actor = PlainCounterActor(MemoryJournal(), manual_clock())
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run, name="actor")
        await settle()
        actor.tell(Add(1))
        actor.tell(Add(10))
        # Queued behind the two: it must not overtake them by turning at once.
        assert await actor.ask(Add(100)) == 111
        assert actor.turned_in == ["actor", "actor", "actor"]
        actor.close()


async def test_an_ask_answered_at_once_still_lets_other_tasks_run() -> None:
    actor = PlainCounterActor(MemoryJournal(), manual_clock())  # commits at once
    others: list[str] = []

    async def other() -> None:
        others.append("ran")

    async with anyio.create_task_group() as tg:
        await tg.start(actor.run, name="actor")
        tg.start_soon(other)
        # Without a checkpoint the asker would never let `other` run. With one, trio may still
        # resume the asker first (it shuffles tasks made runnable together), but not twice.
        assert await actor.ask(Add(1)) == 1
        assert await actor.ask(Add(1)) == 2
        assert others == ["ran"]
        actor.close()


async def test_reply_waits_for_the_commit_while_the_actor_goes_on() -> None:
    journal = GatedJournal()
    actor = counter(journal, manual_clock())
    replies: list[int] = []

    async def add(n: int) -> None:
        replies.append(await actor.ask(Add(n)))

    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        tg.start_soon(add, 1)
        await settle()  # in this order (trio may start two tasks either way round)
        tg.start_soon(add, 2)
        await settle()
        assert actor.state.total == 3  # both turns ran (pipelined) ...
        assert replies == []  # ... but neither caller heard back before the commit
        journal.commit_all()
        await settle()
        assert sorted(replies) == [1, 3]
        actor.close()


async def test_begun_commands_all_turn_at_once_and_each_reply_waits_for_its_commit() -> None:
    journal = GatedJournal()
    actor = PlainCounterActor(journal, manual_clock())
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        replies = [actor.begin(Add(n)) for n in (1, 2, 3)]  # no task, no wait
        assert actor.state.total == 6
        with anyio.move_on_after(0.01) as waiting:
            await replies[0].done.wait()
        assert waiting.cancelled_caught  # not durable yet
        journal.commit_all()
        outcomes = []
        for reply in replies:
            await reply.done.wait()
            outcomes.append(reply.outcome())
        assert outcomes == [1, 3, 6]
        actor.close()


async def test_a_refusal_waits_for_the_commit_of_what_it_observed() -> None:
    journal = GatedJournal()
    actor = counter(journal, manual_clock())
    outcome: list[str] = []

    async def refuse() -> None:
        try:
            await actor.ask(Refuse())
        except Refused:
            outcome.append("refused")

    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        actor.tell(Add(1))
        tg.start_soon(refuse)
        await settle()
        assert outcome == []
        journal.commit_all()
        await settle()
        assert outcome == ["refused"]
        actor.close()


async def add_noting_failures(actor: CounterActor, errors: list[BaseException], n: int) -> None:
    try:
        await actor.ask(Add(n))
    except JournalFailed as error:
        errors.append(error)


async def test_failed_commit_fails_the_callers_and_the_actor_rebuilds_from_the_journal() -> None:
    journal = GatedJournal()
    actor = counter(journal, manual_clock())
    journal.on_failure(lambda keys: actor.poison() if actor.key in keys else None)
    errors: list[BaseException] = []
    add = functools.partial(add_noting_failures, actor, errors)

    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        tg.start_soon(add, 5)
        await settle()
        journal.commit_all()
        await settle()
        tg.start_soon(add, 100)
        await settle()
        assert actor.state.total == 105
        journal.fail_all()
        await settle()
        assert len(errors) == 1  # never a false success
        tg.start_soon(add, 1)
        await settle()
        journal.commit_all()
        await settle()
        assert actor.state.total == 6  # rebuilt from what was durable (5), then +1
        assert actor.stats().rebuilds == 1
        actor.close()


async def test_callers_hear_a_failed_commit_even_when_nobody_is_poisoned() -> None:
    """A journal writer that stops fails its tickets without a failure report: the callers
    waiting on them still get an error, never silence and never a success."""
    journal = GatedJournal()
    actor = counter(journal, manual_clock())
    errors: list[BaseException] = []
    add = functools.partial(add_noting_failures, actor, errors)

    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        tg.start_soon(add, 1)
        tg.start_soon(add, 2)
        await settle()
        for _, ticket in journal.queued:
            ticket.fail(JournalFailed("the journal writer stopped"))
        await settle()
        assert len(errors) == 2
        actor.close()


async def test_timer_sends_expire_due_as_a_turn_at_the_deadline() -> None:
    clock = manual_clock(start=100.0)
    actor = counter(MemoryJournal(), clock)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        await actor.ask(Alarm(130.0))
        await clock.advance(29.9)
        assert actor.state.rang == []
        await clock.advance(0.1)
        assert actor.state.rang == [130.0]
        await clock.advance(100)
        assert actor.state.rang == [130.0]  # one deadline, one ring
        actor.close()


async def test_a_manual_clock_settles_by_itself_on_any_backend() -> None:
    clock = ManualClock(start=100.0)  # settles with anyio.wait_all_tasks_blocked
    actor = counter(MemoryJournal(), clock)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        await actor.ask(Alarm(130.0))
        await clock.advance(30)
        assert actor.state.rang == [130.0]
        actor.close()


async def test_timer_rings_on_the_system_clock_through_the_running_loop() -> None:
    clock = SystemClock()
    actor = CounterActor("counter", journal=MemoryJournal(), clock=clock)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        alarm = clock.now() + 0.05
        await actor.ask(Alarm(alarm))
        with anyio.fail_after(5):
            while not actor.state.rang:
                await anyio.sleep(0.01)
        assert len(actor.state.rang) == 1 and actor.state.rang[0] >= alarm
        actor.close()


async def test_deadline_moved_later_rings_at_the_later_instant_only() -> None:
    clock = manual_clock(start=100.0)
    actor = counter(MemoryJournal(), clock)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        await actor.ask(Alarm(130.0))
        await actor.ask(Alarm(200.0))
        await clock.advance(50)
        assert actor.state.rang == []
        await actor.ask(Alarm(160.0))  # earlier than the armed 200: re-armed at once
        await clock.advance(10)
        assert actor.state.rang == [160.0]
        actor.close()


async def test_state_is_rebuilt_from_snapshot_and_later_events() -> None:
    journal = MemoryJournal()
    clock = manual_clock()
    actor = counter(journal, clock)
    actor.snapshot_every = 2
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        for n in (1, 2, 3):
            await actor.ask(Add(n))
        actor.close()
    assert journal.snapshots["counter"].actor_seq == 2
    history = (await journal.load(["counter"]))["counter"]
    assert [r.actor_seq for r in history.records] == [3]
    copy = counter(journal, clock)
    copy.restore(history)
    assert copy.state.total == 6 and copy.seq == 3


async def test_a_snapshot_of_events_that_failed_to_commit_is_dropped_before_the_rebuild() -> None:
    journal = MemoryJournal()
    actor = counter(journal, ManualClock())
    actor.snapshot_every = 1
    journal.on_failure(lambda keys: actor.poison() if actor.key in keys else None)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        for n in (1, 2):
            await actor.ask(Add(n))
        journal.fail_next()
        with pytest.raises(JournalFailed):
            await actor.ask(Add(100))  # applied in memory, snapshotted, never durable
        await settle()
        assert journal.snapshots["counter"].actor_seq == 2
        assert await actor.ask(Add(10)) == 13
        assert actor.stats().rebuilds == 1
        actor.close()
