"""The journal port: how actors make their events durable, and an in-memory implementation.

An actor appends the events of each turn and gets a `CommitTicket`. The actor does not wait for
it (pipelining); the caller whose reply depends on those events does. Tickets of one journal
resolve in append order, so waiting for an actor's latest ticket covers every earlier turn.

A failed commit fails its tickets and every later ticket of the same actors, and reports the
actor keys to the failure listener; those keys stay *poisoned* (appends fail at once) until the
actor has rebuilt itself from what is durable and calls `reopen`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from engine.errors import JournalFailed
from engine.events import Event
from engine.views import JournalStats


@dataclass(frozen=True, slots=True)
class JournalRecord:
    actor_key: str
    actor_seq: int
    event: Event


@dataclass(frozen=True, slots=True)
class Snapshot:
    actor_key: str
    actor_seq: int
    state: dict[str, Any]


@dataclass(slots=True)
class ActorHistory:
    """What recovery needs for one actor: its latest snapshot and the events after it (every
    event when there is no snapshot)."""

    snapshot: Snapshot | None = None
    records: list[JournalRecord] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        if self.records:
            return self.records[-1].actor_seq
        return self.snapshot.actor_seq if self.snapshot else 0


class CommitTicket:
    """Resolves once the appended events are durable, or fails with `JournalFailed`."""

    __slots__ = ("_callbacks", "_error", "_event", "_settled", "done")

    def __init__(self) -> None:
        self.done = False
        self._error: JournalFailed | None = None
        self._event: anyio.Event | None = None
        self._callbacks: list[Callable[[], None]] | None = None
        self._settled: list[Callable[[], None]] | None = None

    @classmethod
    def committed(cls) -> CommitTicket:
        ticket = cls()
        ticket.done = True
        return ticket

    @property
    def failed(self) -> bool:
        return self._error is not None

    def resolve(self) -> None:
        self._finish(None)

    def fail(self, error: JournalFailed) -> None:
        self._finish(error)

    def _finish(self, error: JournalFailed | None) -> None:
        if self.done:
            return
        self.done = True
        self._error = error
        if self._event is not None:
            self._event.set()
        if error is None and self._callbacks:
            for callback in self._callbacks:
                callback()
        self._callbacks = None
        if self._settled:
            for callback in self._settled:
                callback()
        self._settled = None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the events are durable (now if they already are)."""
        if self.done:
            if self._error is None:
                callback()
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)

    def on_done(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the ticket is resolved or failed (now if it already is)."""
        if self.done:
            callback()
            return
        if self._settled is None:
            self._settled = []
        self._settled.append(callback)

    async def wait(self) -> None:
        if not self.done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


FailureListener = Callable[[set[str]], None]


class Journal(Protocol):
    @property
    def healthy(self) -> bool:
        """Commits are going through: False from a failed commit until one succeeds again.
        Actors refuse commands at once while it is False (see `Actor.ask`)."""
        ...

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        """Queue records for durable storage; never blocks. Records of one call commit together."""
        ...

    def report(self) -> JournalStats:
        """Health and figures so far, for the admin API and the metrics."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot after the records it covers; a lost snapshot only slows recovery.
        Dropped while the actor's key is poisoned (its state may hold lost events)."""
        ...

    def on_failure(self, listener: FailureListener) -> None:
        """Register who is told which actor keys a failed commit poisoned."""
        ...

    def reopen(self, actor_key: str) -> None:
        """The actor has rebuilt from durable history: accept its appends again."""
        ...

    async def load(
        self, actor_keys: Iterable[str] | None = None, *, snapshots: bool = True
    ) -> dict[str, ActorHistory]:
        """Durable history per actor key (every key when `actor_keys` is None); with
        `snapshots=False`, every event of each actor and no snapshot."""
        ...


class MemoryJournal:
    """A journal that keeps everything in memory and commits at once: for tests and benchmarks.

    `fail_next(n)` makes the next `n` appends fail, to exercise the failure path;
    `lose_next_acks(n)` stores the next `n` appends but fails their tickets, as when a commit
    landed and only its confirmation was lost; `healthy = False` stands for a database that
    does not answer (appends fail, and `load` raises).
    """

    def __init__(self) -> None:
        self.healthy = True
        self.appends = 0  # every append so far, failed or not: for fault injection by index
        self.records: list[JournalRecord] = []
        self.snapshots: dict[str, Snapshot] = {}
        self._listeners: list[FailureListener] = []
        self._poisoned: set[str] = set()
        self._failures_due = 0
        self._lost_acks_due = 0
        self._fail_at: set[int] = set()
        self._lose_at: set[int] = set()

    def fail_next(self, count: int = 1) -> None:
        self._failures_due += count

    def lose_next_acks(self, count: int = 1) -> None:
        self._lost_acks_due += count

    def fail_append(self, index: int, *, landed: bool = False) -> None:
        """Fail the append numbered `index` (counting from 0, see `appends`); with `landed`,
        store it and fail only its acknowledgement."""
        (self._lose_at if landed else self._fail_at).add(index)

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        index = self.appends
        self.appends += 1
        keys = {record.actor_key for record in records}
        if not self.healthy or keys & self._poisoned:
            return self._failed(keys)
        if self._failures_due > 0 or index in self._fail_at:
            self._failures_due -= index not in self._fail_at
            return self._failed(keys)
        self.records.extend(records)
        if self._lost_acks_due > 0 or index in self._lose_at:
            self._lost_acks_due -= index not in self._lose_at
            return self._failed(keys)
        return CommitTicket.committed()

    def report(self) -> JournalStats:
        error = None if self.healthy else "the journal's database does not answer"
        return JournalStats(self.healthy, error, self.appends, len(self.records), 0, 0)

    def _failed(self, keys: set[str]) -> CommitTicket:
        ticket = CommitTicket()
        ticket.fail(JournalFailed("the journal could not commit"))
        self._poisoned |= keys
        for listener in self._listeners:
            listener(keys)
        return ticket

    def save_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.actor_key in self._poisoned:
            return  # as in the SQL journal: the state may hold events that never became durable
        self.snapshots[snapshot.actor_key] = snapshot

    def on_failure(self, listener: FailureListener) -> None:
        self._listeners.append(listener)

    def reopen(self, actor_key: str) -> None:
        self._poisoned.discard(actor_key)

    async def load(
        self, actor_keys: Iterable[str] | None = None, *, snapshots: bool = True
    ) -> dict[str, ActorHistory]:
        if not self.healthy:
            raise ConnectionError("the journal's database does not answer")
        wanted = None if actor_keys is None else set(actor_keys)
        histories: dict[str, ActorHistory] = {}
        for key, snapshot in self.snapshots.items() if snapshots else ():
            if wanted is None or key in wanted:
                histories[key] = ActorHistory(snapshot=snapshot)
        for record in self.records:
            if wanted is not None and record.actor_key not in wanted:
                continue
            history = histories.setdefault(record.actor_key, ActorHistory())
            if history.snapshot is None or record.actor_seq > history.snapshot.actor_seq:
                history.records.append(record)
        return histories
