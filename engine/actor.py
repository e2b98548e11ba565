"""The actor runtime: a bounded mailbox, one turn at a time, journaled events, one timer.

A turn runs a command against the actor's state. Handlers decide (pure domain code that may
refuse), then `emit` the events: they are applied to memory and appended to the journal at once.
The reply travels back with the latest commit ticket and the *caller* waits for it, so the actor
goes on with the next command while the journal commits (pipelining), and no reply is released
before everything it observed is durable.

An actor's turns are either plain code (`decide`: no await, as for seats, the queue and the
wallets) or a flow that awaits other actors (`handle`, as for checkout). A plain actor that an
`ask` finds idle (its task parked on an empty mailbox) runs the turn at once in the asking task:
nothing is queued ahead of it and the turn cannot be interleaved, so the order and the
one-turn-at-a-time rule hold, and the ask skips a round trip through the actor's task (with
holds spread over thousands of dates, nearly every ask finds its actor idle).

Time is a message: the actor's timer (a clock callback, not a task) fires at the state's next
deadline and sends `ExpireDue(now)` through the mailbox like any other command, so expiry never
races a payment.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import anyio
from anyio.abc import TaskStatus

from engine.clock import Clock
from engine.commands import Command
from engine.errors import ActorUnavailable, EngineError, HandlerCrashed, Overloaded
from engine.events import Event
from engine.journal import ActorHistory, CommitTicket, Journal, JournalRecord, Snapshot
from engine.loop import EventLoop, TimerHandle, Wakeup, running
from engine.snapshots import SnapshotRefused
from engine.views import ActorKind, ActorStats, Origin, Scalar

log = logging.getLogger(__name__)


class DomainState(Protocol):
    """What the runtime needs of an actor's pure state."""

    def apply(self, event: Event) -> None: ...

    def next_deadline(self) -> float | None: ...

    def to_snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready values that share nothing mutable with the live state."""
        ...

    def summary(self) -> dict[str, Scalar]: ...


S = TypeVar("S", bound=DomainState)
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

EventListener = Callable[[Origin, Sequence[Event]], None]


MAX_SNAPSHOT_GAP = 100_000  # events replayed at most on top of a large state's snapshot
JOURNAL_RETRY = 0.5  # seconds until a timer turn deferred by a journal outage is tried again
REBUILD_RETRY_MAX = 1.0  # seconds between two attempts to reload a poisoned actor, at most
BURST = 64  # turns an actor may run back to back before yielding to the event loop
# Turns whose latency an actor's stats describe. Small because reading the stats sorts them,
# for every actor at once when the dashboard or /metrics lists thousands of dates.
LATENCY_WINDOW = 256

_REBUILD = object()  # a no-op command that lets a poisoned actor rebuild at once


@dataclass(frozen=True, slots=True)
class ExpireDue(Command[None]):
    """Sent by an actor's own timer: expire whatever is due at `now` (also sent at recovery,
    for what lapsed while the engine was down)."""

    now: float


_Item = tuple[Any, "_Pending[Any] | None"]


class _Mailbox:
    """An actor's bounded mailbox: a FIFO that only the actor's own loop takes from.

    `put` never waits: a full mailbox raises `WouldBlock` (the caller answers OVERLOADED), a
    closed one `ClosedResourceError`. Unlike a memory object stream, whose `receive` goes
    through a checkpoint first, taking a queued command costs no trip through the event loop
    and waiting on an empty mailbox costs one event: with holds spread over many dates each
    date's mailbox is empty nearly every time, so that checkpoint was a loop round trip per
    command.
    """

    __slots__ = ("_waiter", "capacity", "closed", "items", "new_event")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.closed = False
        self.items: deque[_Item] = deque()
        self.new_event: Callable[[], Wakeup] = anyio.Event
        self._waiter: Wakeup | None = None

    def put(self, item: _Item, *, over_capacity: bool = False) -> None:
        if self.closed:
            raise anyio.ClosedResourceError
        if len(self.items) >= self.capacity and not over_capacity:
            raise anyio.WouldBlock
        self.items.append(item)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def parked(self) -> bool:
        """The actor's loop waits on an empty mailbox: nothing is queued or running."""
        return self._waiter is not None and not self.items

    async def get(self) -> _Item:
        """The next item, waiting while there is none; `EndOfStream` once closed and empty."""
        items = self.items
        while not items:
            if self.closed:
                raise anyio.EndOfStream
            waiter = self._waiter = self.new_event()
            await waiter.wait()
        return items.popleft()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()


class Reply(Protocol[R_co]):
    """A command's reply to come (`Actor.begin`)."""

    @property
    def done(self) -> Wakeup: ...

    def outcome(self) -> R_co: ...


class _Pending(Generic[R]):
    """One caller's reply slot. It is woken once, when the reply is there *and* durable (or
    its commit failed): one wake-up per ask rather than one for the reply and one for the
    commit, as every wake-up of a task costs a pass through the busy event loop."""

    __slots__ = ("done", "error", "ticket", "value")

    value: R  # set by the turn with the reply, unless it raised (then `error` is)

    def __init__(self, new_event: Callable[[], Wakeup]) -> None:
        self.done = new_event()
        self.error: BaseException | None = None
        self.ticket: CommitTicket | None = None

    def outcome(self) -> R:
        """The reply once `done` is set: the value, or the error raised."""
        if self.ticket is not None:
            self.ticket.raise_if_failed()
        error = self.error
        if error is None:
            return self.value
        # Raise without leaving a cycle (error -> traceback -> this frame -> error) for the
        # cyclic collector: at thousands of refusals a second those passes stall the loop.
        self.error = None
        try:
            raise error
        finally:
            del error


class Actor(ABC, Generic[S]):
    """Owns a state alone; the only way in is a command through the mailbox."""

    kind: ClassVar[ActorKind]

    def __init__(
        self,
        key: str,
        *,
        journal: Journal,
        clock: Clock,
        origin: Origin | None = None,
        mailbox_size: int = 1024,
        snapshot_every: int = 1000,
        retry_after: float = 1.0,
    ) -> None:
        self.key = key
        self.origin = origin or Origin(self.kind, key)
        self.journal = journal
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.retry_after = retry_after
        self.state: S = self.initial_state()
        self.seq = 0
        # Bumped by every change of the state (events applied, a rebuild): read views made
        # from the state stay valid while it is unchanged.
        self.version = 0
        self.listeners: list[EventListener] = []
        self._mailbox_size = mailbox_size
        self._mailbox = _Mailbox(mailbox_size)
        # Every turn is synchronous (`decide`): an idle actor's turn may run in the asking task.
        self._plain = type(self).handle is Actor.handle
        self._last_ticket = CommitTicket.committed()
        self._since_snapshot = 0
        self._snapshot_weight = 0
        self._poisoned = False
        self._burst = 0
        # The timer: armed for `_armed` (or None), or an ExpireDue already in the mailbox.
        self._armed: float | None = None
        self._timer: TimerHandle | None = None
        self._expire_queued = False
        # The event loop `run` serves on (None when not running), looked up once: on the hot
        # path its checkpoint costs a bare pass through the loop, anyio's a backend lookup too.
        self._loop: EventLoop | None = None
        self._processed = 0
        self._errors = 0
        self._overloaded = 0
        self._rebuilds = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        # (processed, (p50, p99, max) in ms) as of the last `stats`: an idle actor's figures
        # are not sorted again, as listing thousands of dates reads every one of them.
        self._latency_figures: tuple[int, tuple[float, float, float]] = (0, (0.0, 0.0, 0.0))
        self._stopped = anyio.Event()

    # -- what a concrete actor provides -------------------------------------------------------

    @abstractmethod
    def initial_state(self) -> S: ...

    @abstractmethod
    def state_from_snapshot(self, data: dict[str, Any]) -> S: ...

    def decide(self, command: Command[Any]) -> Any:
        """Run one command without awaiting: decide, `emit` the events, return the reply (or
        raise `Refused`). Plain actors implement this; flows that await implement `handle`."""
        raise NotImplementedError(f"{type(self).__name__} implements neither decide nor handle")

    async def handle(self, command: Command[Any]) -> Any:
        """Run one command that may await (other actors, say); the default is `decide`."""
        return self.decide(command)

    # -- the way in ----------------------------------------------------------------------------

    async def ask(self, command: Command[R]) -> R:
        """Send a command and wait for its reply, released once its events are durable.

        Raises `ActorUnavailable` at once, without running the command, while the actor
        rebuilds after a failed commit or while the journal cannot commit: an answer in
        bounded time rather than a wait as long as the outage.
        """
        pending = self._begin(command)
        if pending.ticket is not None and pending.ticket.done:
            # Answered and durable at once (a refusal, an in-memory journal): still a
            # checkpoint, or a caller asking in a loop would never let the loop run.
            assert self._loop is not None  # the turn ran in the asking task
            await self._loop.checkpoint()
            return pending.outcome()
        # Awaited here rather than in a method of `_Pending`: each coroutine between the
        # request's task and the future is resumed again when the reply arrives.
        await pending.done.wait()
        return pending.outcome()

    def begin(self, command: Command[R]) -> Reply[R]:
        """Start `command` without waiting: its reply, `done` once there and durable, then
        `outcome()`. For a caller with many commands at once (a shard host's batch), one
        task awaiting each reply in turn instead of a task per command. Raises as `ask`
        does while the actor rebuilds or the journal cannot commit."""
        return self._begin(command)

    def _begin(self, command: Command[R]) -> _Pending[R]:
        if self._poisoned or not self.journal.healthy:
            raise ActorUnavailable(self._unavailable_reason())
        pending: _Pending[R] = _Pending(self._mailbox.new_event)
        if self._plain and self._loop is not None and self._mailbox.parked():
            self._turn_now(command, pending)
        else:
            self._post(command, pending)
        return pending

    def _unavailable_reason(self) -> str:
        if self._poisoned:
            return f"{self.key} is rebuilding after a failed commit; retry shortly"
        return "the journal cannot commit right now; retry shortly"

    def tell(self, command: Command[Any]) -> None:
        """Send a command without waiting for its outcome."""
        self._post(command, None)

    def _post(self, command: Any, pending: _Pending[Any] | None) -> None:
        try:
            self._mailbox.put((command, pending))
        except anyio.WouldBlock:
            self._overloaded += 1
            raise Overloaded(self.key, self.retry_after) from None
        except anyio.ClosedResourceError:
            raise ActorUnavailable(f"{self.key} is not running") from None

    # -- inside a turn -------------------------------------------------------------------------

    def emit(self, events: Sequence[Event]) -> None:
        """Apply events to the state and hand them to the journal (without waiting)."""
        if not events:
            return
        records = []
        for item in events:
            self.state.apply(item)
            self.seq += 1
            records.append(JournalRecord(self.key, self.seq, item))
        self.version += 1
        ticket = self.journal.append(records)
        self._last_ticket = ticket
        self._since_snapshot += len(records)
        if self.listeners:
            batch = tuple(events)
            ticket.on_commit(lambda: self._publish(batch))

    def _publish(self, events: Sequence[Event]) -> None:
        for listener in self.listeners:
            try:
                listener(self.origin, events)
            except Exception:  # a broken subscriber must not break the actor
                log.exception("event listener failed on %s", self.key)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve commands until the mailbox is closed and drained."""
        loop = self._loop = running()
        self._mailbox.new_event = loop.new_wakeup
        try:
            self._arm(self.state.next_deadline())
            task_status.started()
            while True:
                try:
                    command, pending = await self._next_command(loop)
                except anyio.EndOfStream:
                    break
                if self._poisoned:
                    await self._rebuild()
                await self._turn(command, pending)
        finally:
            self._loop = None
            self._mailbox.close()
            self._disarm()
            self._stopped.set()

    async def _next_command(self, loop: EventLoop) -> tuple[Any, _Pending[Any] | None]:
        """The next command: straight from the mailbox while a burst lasts (no trip through
        the event loop per turn), then through a checkpoint so other tasks get their turn."""
        items = self._mailbox.items
        if items:
            if self._burst < BURST:
                self._burst += 1
                return items.popleft()
            await loop.checkpoint()
        self._burst = 0
        return await self._mailbox.get()

    def close(self) -> None:
        """Stop taking commands; `run` returns once those already queued have run."""
        self._mailbox.close()

    @property
    def rebuilding(self) -> bool:
        """A commit of ours failed and the state is not yet rebuilt from what is durable."""
        return self._poisoned

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _turn(self, command: Any, pending: _Pending[Any] | None) -> None:
        if self._plain or isinstance(command, ExpireDue) or command is _REBUILD:
            self._turn_now(command, pending)
            return
        started = time.perf_counter()
        seq = self.seq
        try:
            value = await self.handle(command)
        except Exception as error:
            self._turn_ends(command, pending, started, seq, None, error)
        else:
            self._turn_ends(command, pending, started, seq, value, None)

    def _turn_now(self, command: Any, pending: _Pending[Any] | None) -> None:
        """A turn that does not await: timer and rebuild turns, and every turn of a plain actor."""
        started = time.perf_counter()
        seq = self.seq
        try:
            if isinstance(command, ExpireDue):
                if not self.journal.healthy:
                    # Its events could not be made durable: expire once the journal is back,
                    # rather than fail the commit and rebuild from a database that is down.
                    self._expire_queued = False
                    self._arm(self.clock.now() + JOURNAL_RETRY)
                    return
                value = self.on_expire_due(command.now)
            elif command is _REBUILD:
                value = None
            else:
                value = self.decide(command)
        except Exception as error:
            self._turn_ends(command, pending, started, seq, None, error)
        else:
            self._turn_ends(command, pending, started, seq, value, None)

    def _turn_ends(
        self,
        command: Any,
        pending: _Pending[Any] | None,
        started: float,
        seq: int,
        value: Any,
        error: Exception | None,
    ) -> None:
        refused = False
        if error is None:
            self._reply(pending, value, None)
        elif isinstance(error, EngineError):
            refused = True
            self._reply(pending, None, error)
        else:
            self._errors += 1
            log.error("handler of %s failed on %r", self.key, command, exc_info=error)
            self._reply(pending, None, HandlerCrashed(f"{type(error).__name__}: {error}"))
        self._processed += 1
        self._latencies.append(time.perf_counter() - started)
        if self._since_snapshot >= self._snapshot_due():
            self.take_snapshot()
        if isinstance(command, ExpireDue):
            self._expire_queued = False
            self._disarm()
        elif refused and self.seq == seq:
            return  # refused without an event: the state and its deadline are unchanged
        # Re-arm only when the deadline moved earlier: a later one is served by letting the
        # armed timer fire (its ExpireDue turn finds nothing due and re-arms), which is far
        # cheaper than cancelling and re-arming on every hold and release.
        deadline = self.state.next_deadline()
        if deadline is not None and (self._armed is None or deadline < self._armed):
            self._arm(deadline)

    def _reply(
        self, pending: _Pending[Any] | None, value: Any, error: BaseException | None
    ) -> None:
        if pending is None:
            if error is not None and not isinstance(error, EngineError | HandlerCrashed):
                log.warning("told command failed on %s: %s", self.key, error)
            return
        if error is not None:
            # The caller raises it again with its own traceback; ours would keep this turn's
            # frames (and `pending`) alive in a reference cycle.
            error.__traceback__ = None
        pending.value = value
        pending.error = error
        ticket = pending.ticket = self._last_ticket
        ticket.on_done(pending.done.set)

    def on_expire_due(self, now: float) -> Any:
        """Expire what is due at `now`; actors with deadlines override this."""
        return None

    def take_snapshot(self) -> None:
        state = self.state.to_snapshot()
        self.journal.save_snapshot(Snapshot(self.key, self.seq, state))
        self._since_snapshot = 0
        self._snapshot_weight = self.state_weight()

    def _snapshot_due(self) -> int:
        """Events between snapshots: `snapshot_every`, or more for a large state, as a
        snapshot costs time in proportion to its size; capped so recovery stays short."""
        return max(self.snapshot_every, min(self._snapshot_weight // 2, MAX_SNAPSHOT_GAP))

    def state_weight(self) -> int:
        """Roughly how many items a snapshot of the state holds; large states override it."""
        return 0

    def _arm(self, deadline: float | None) -> None:
        """Have `ExpireDue` sent at `deadline` (replacing an armed timer); no-op while one is
        already in the mailbox, as its turn arms the timer again."""
        if self._expire_queued or deadline is None or self._mailbox.closed:
            return
        self._disarm()
        if deadline <= self.clock.now():
            self._send_expire_due()
        else:
            self._armed = deadline
            self._timer = self.clock.call_at(deadline, self._send_expire_due)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed = None

    def _send_expire_due(self) -> None:
        self._timer = None
        self._armed = None
        # Past the mailbox's capacity if need be: the timer has one message out at a time.
        with contextlib.suppress(anyio.ClosedResourceError):
            self._mailbox.put((ExpireDue(self.clock.now()), None), over_capacity=True)
            self._expire_queued = True

    # -- recovery ------------------------------------------------------------------------------

    def restore(self, history: ActorHistory | None) -> None:
        """Rebuild the state from a snapshot and the events after it (no journaling).

        Raises:
            SnapshotRefused: the snapshot cannot be read (a version this code does not know,
                or malformed); nothing changed. `recover` then replays every event instead.
        """
        snapshot = history.snapshot if history is not None else None
        if snapshot is not None:
            self.state = self._state_from(snapshot)
            self.seq = snapshot.actor_seq
        else:
            self.state = self.initial_state()
            self.seq = 0
        if history is not None:
            for record in history.records:
                self.state.apply(record.event)
                self.seq = record.actor_seq
        self.version += 1
        self._since_snapshot = len(history.records) if history is not None else 0
        self._last_ticket = CommitTicket.committed()
        if self._loop is not None:  # a rebuild mid-run: the deadlines may have moved either way
            self._disarm()
            self._arm(self.state.next_deadline())

    def _state_from(self, snapshot: Snapshot) -> S:
        try:
            return self.state_from_snapshot(snapshot.state)
        except Exception as error:
            # Whatever fails to read it, the events it covers are still in the journal.
            state: Any = snapshot.state
            version = state.get("version", 0) if isinstance(state, dict) else None
            raise SnapshotRefused(
                f"the snapshot of {self.key} at seq {snapshot.actor_seq} (version {version!r})"
                f" cannot be read: {error}"
            ) from error

    async def recover(self, history: ActorHistory | None) -> None:
        """`restore` from `history`; if its snapshot is refused, from every event of this actor,
        loaded again without the snapshot (the journal keeps them all; a snapshot only shortens
        recovery). A running actor retries a failed load; otherwise the error is raised."""
        try:
            self.restore(history)
        except SnapshotRefused as refused:
            log.error("%s; replaying every event of %s from seq 0 instead", refused, self.key)
            self.restore(await self._load_history(snapshots=False))

    def follow(self, actor_seq: int, event: Event) -> bool:
        """Apply a committed event of this actor's to a copy that runs no turns (a replica:
        the cluster's gateways keep one of every actor for their read views). Returns False
        when it is not the next one: events were missed, and the history must be reloaded."""
        if actor_seq <= self.seq:
            return True  # seen already
        if actor_seq != self.seq + 1:
            return False
        self.state.apply(event)
        self.seq = actor_seq
        self.version += 1
        return True

    def poison(self) -> None:
        """A commit of ours failed: rebuild from the journal before the next turn."""
        self._poisoned = True
        # Wake the loop so the read view stops showing what never became durable.
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self._mailbox.put((_REBUILD, None))

    async def _rebuild(self) -> None:
        await self.recover(await self._load_history(snapshots=True))
        self._rebuilds += 1
        self._poisoned = False
        self.journal.reopen(self.key)
        self.on_rebuilt()

    async def _load_history(self, *, snapshots: bool) -> ActorHistory | None:
        """This actor's durable history. A running actor (rebuilding) retries until the load
        succeeds; before it runs (recovery at start) a failed load raises."""
        delay = 0.05
        failures = 0
        while True:
            if self._loop is not None and not self.journal.healthy:
                # Wait for the journal's own probe to find the database again, rather than
                # have every poisoned actor try it (and wait on the connection pool) at once.
                await anyio.sleep(JOURNAL_RETRY / 5)
                continue
            try:
                histories = await self.journal.load([self.key], snapshots=snapshots)
                return histories.get(self.key)
            except Exception as error:
                if self._loop is None:
                    raise
                failures += 1
                if failures == 1:
                    log.exception("reloading %s failed; retrying", self.key)
                else:
                    log.warning("reloading %s failed again: %s", self.key, error)
                await anyio.sleep(delay)
                delay = min(delay * 2, REBUILD_RETRY_MAX)

    def on_rebuilt(self) -> None:
        """Called once the state is rebuilt from what is durable, before the next turn:
        actors with work left unfinished by the failed commit take it up again here."""

    # -- observation ---------------------------------------------------------------------------

    def stats(self) -> ActorStats:
        processed, (p50, p99, longest) = self._latency_figures
        if processed != self._processed:
            latencies = sorted(self._latencies)

            def pct(q: float) -> float:
                return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

            p50, p99, longest = pct(0.5), pct(0.99), latencies[-1] * 1000
            self._latency_figures = (self._processed, (p50, p99, longest))
        return ActorStats(
            key=self.key,
            kind=self.kind,
            mailbox_depth=len(self._mailbox.items),
            mailbox_capacity=self._mailbox_size,
            processed=self._processed,
            errors=self._errors,
            overloaded=self._overloaded,
            rebuilds=self._rebuilds,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            latency_max_ms=longest,
            state=self.state.summary(),
        )
