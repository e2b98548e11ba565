"""The SQL journal: group commit of every actor's events, snapshots, and reading history back.

`append` never blocks: it queues the records with a fresh ticket and wakes the writer task. The
one writer takes whatever is queued (up to `max_batch` events, after lingering `linger` seconds
so that other actors' appends join the group), writes it in one transaction from a worker
thread, and then resolves the tickets on the event loop *in append order*. Snapshots ride the
same queue, so one is never stored ahead of the records it covers. Events are encoded when
they are appended, so the worker thread (which needs the GIL the event loop is using) has
little Python left to run: see `persistence.rows.GroupWriter`.

A failed transaction acknowledges nothing: its tickets fail, every later queued append of the
same actors is failed and dropped (their sequence numbers follow the lost ones), and those actor
keys are poisoned (appends fail at once, snapshots are dropped) until the actor has rebuilt
from what is durable and calls `reopen`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus
from sqlalchemy import Engine

from engine.errors import JournalFailed
from engine.journal import ActorHistory, CommitTicket, FailureListener, JournalRecord, Snapshot
from persistence.history import load_histories
from persistence.rows import EncodedRow, GroupWriter, SnapshotRow, encode_records, encode_state

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Append:
    rows: list[EncodedRow]
    ticket: CommitTicket
    keys: frozenset[str]
    queued_at: float


@dataclass(slots=True)
class _SnapshotWrite:
    actor_key: str
    actor_seq: int
    state: str  # encoded at once: the live state keeps changing after the turn


@dataclass(slots=True)
class WriterStats:
    """What the writer has done so far: for the admin API and the benchmark."""

    commits: int = 0
    events: int = 0
    snapshots: int = 0
    failures: int = 0
    # Seconds from append to commit of each recent append (a bounded window).
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


class SqlJournal:
    """The engine's journal port on a SQL database, with group commit."""

    def __init__(self, engine: Engine, *, max_batch: int = 5000, linger: float = 0.002) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.linger = linger
        self.stats = WriterStats()
        self._writer = GroupWriter(engine)
        self._queue: deque[_Append | _SnapshotWrite] = deque()
        self._in_flight: list[_Append | _SnapshotWrite] = []
        self._queued_events = 0
        self._wakeup = anyio.Event()
        self._poisoned: set[str] = set()
        self._listeners: list[FailureListener] = []
        self._closing = False
        self._stopped = anyio.Event()

    # -- the port ------------------------------------------------------------------------------

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        ticket = CommitTicket()
        keys = frozenset(record.actor_key for record in records)
        if self._closing:
            ticket.fail(JournalFailed("the journal is closed"))
            return ticket
        if keys & self._poisoned:
            ticket.fail(JournalFailed("an earlier commit of this actor failed; it is rebuilding"))
            self._poison(keys)
            return ticket
        self._queue.append(_Append(encode_records(records), ticket, keys, time.perf_counter()))
        self._queued_events += len(records)
        self._wakeup.set()
        return ticket

    def save_snapshot(self, snapshot: Snapshot) -> None:
        if self._closing or snapshot.actor_key in self._poisoned:
            return  # the state may hold events that will never be durable
        state = encode_state(snapshot.state)
        self._queue.append(_SnapshotWrite(snapshot.actor_key, snapshot.actor_seq, state))
        self._wakeup.set()

    def on_failure(self, listener: FailureListener) -> None:
        self._listeners.append(listener)

    def reopen(self, actor_key: str) -> None:
        self._poisoned.discard(actor_key)

    async def load(self, actor_keys: Iterable[str] | None = None) -> dict[str, ActorHistory]:
        keys = None if actor_keys is None else list(dict.fromkeys(actor_keys))
        return await anyio.to_thread.run_sync(load_histories, self.engine, keys)

    # -- the writer task -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Commit queued groups until `close` is called and the queue is drained."""
        task_status.started()
        try:
            idle = True
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                    idle = True
                    continue
                # Linger only after idling: what queued up during the previous commit has
                # already waited one commit long, and that group has formed by itself.
                lingering = idle and self._queued_events < self.max_batch and not self._closing
                if self.linger > 0 and lingering:
                    await anyio.sleep(self.linger)
                idle = False
                batch = self._in_flight = self._take_batch()
                try:
                    await anyio.to_thread.run_sync(self._write, batch)
                except Exception as error:
                    log.exception("journal commit of %d entries failed", len(batch))
                    self._fail(batch, error)
                else:
                    self._resolve(batch)
                self._in_flight = []
        finally:
            self._abandon()
            self._writer.close()
            self._stopped.set()

    async def close(self) -> None:
        """Stop taking appends and wait until everything queued has been committed (or failed)."""
        self._closing = True
        self._wakeup.set()
        await self._stopped.wait()

    def _abandon(self) -> None:
        """The writer stopped (cancelled, or crashed): answer every caller still waiting with a
        failure rather than never; a group cut off mid-commit may or may not be on disk, so it
        is not acknowledged either way."""
        self._closing = True
        stopped = JournalFailed("the journal writer stopped")
        for entry in (*self._in_flight, *self._queue):
            if isinstance(entry, _Append):
                entry.ticket.fail(stopped)
        self._in_flight = []
        self._queue.clear()
        self._queued_events = 0

    def _take_batch(self) -> list[_Append | _SnapshotWrite]:
        batch: list[_Append | _SnapshotWrite] = []
        events = 0
        while self._queue and (events < self.max_batch or not batch):
            entry = self._queue.popleft()
            batch.append(entry)
            if isinstance(entry, _Append):
                events += len(entry.rows)
        self._queued_events -= events
        return batch

    def _write(self, batch: list[_Append | _SnapshotWrite]) -> None:
        """One transaction for the whole group (runs in a worker thread)."""
        rows: list[EncodedRow] = []
        snapshots: dict[str, SnapshotRow] = {}
        for entry in batch:
            if isinstance(entry, _Append):
                rows += entry.rows
            else:  # only the latest of the group matters
                snapshots[entry.actor_key] = (entry.actor_key, entry.actor_seq, entry.state)
        self._writer.write(rows, list(snapshots.values()), datetime.now(UTC))
        self.stats.commits += 1
        self.stats.events += len(rows)
        self.stats.snapshots += len(snapshots)

    def _resolve(self, batch: list[_Append | _SnapshotWrite]) -> None:
        done = time.perf_counter()
        for entry in batch:
            if isinstance(entry, _Append):
                self.stats.latencies.append(done - entry.queued_at)
                entry.ticket.resolve()

    def _fail(self, batch: list[_Append | _SnapshotWrite], error: Exception) -> None:
        self.stats.failures += 1
        failure = JournalFailed(f"the journal could not commit: {type(error).__name__}")
        lost: set[str] = set()
        for entry in batch:
            if isinstance(entry, _Append):
                lost |= entry.keys
                entry.ticket.fail(failure)
        # Later appends of those actors follow the lost sequence numbers: they cannot commit.
        kept: deque[_Append | _SnapshotWrite] = deque()
        for entry in self._queue:
            if isinstance(entry, _Append) and entry.keys & lost:
                lost |= entry.keys
                self._queued_events -= len(entry.rows)
                entry.ticket.fail(failure)
            elif isinstance(entry, _SnapshotWrite) and entry.actor_key in lost:
                continue
            else:
                kept.append(entry)
        self._queue = kept
        self._poison(lost)

    def _poison(self, keys: Iterable[str]) -> None:
        fresh = set(keys) - self._poisoned
        if not fresh:
            return
        self._poisoned |= fresh
        for listener in self._listeners:
            try:
                listener(fresh)
            except Exception:
                log.exception("journal failure listener failed")
