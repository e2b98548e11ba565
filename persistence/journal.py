"""The SQL journal: group commit of every actor's events, snapshots, and reading history back.

`append` never blocks: it queues the records with a fresh ticket. A writer thread of its own
takes whatever is queued (up to `max_batch` events; after an idle spell it may linger `linger`
seconds so that other actors' appends join the group), writes it in one transaction, hands the
tickets back to the event loop to resolve *in append order*, and takes the next group at once.
Snapshots ride the same queue, so one is never stored ahead of the records it covers.

Why a thread that runs by itself rather than a task that sends each group to a worker thread:
under load every hop through the busy event loop costs a whole loop iteration (milliseconds),
and a task-driven writer paid two per group (to start the write, to see it finish) on top of
the write, so groups were far apart and every hold waited for them. Here the loop only queues
and resolves; the commits follow each other as fast as the disk and the GIL allow. Events are
encoded when they are appended, so the thread has little Python to run: see
`persistence.rows.GroupWriter`.

While the database does not answer, nothing waits for it for long: a group commit still
blocked after `rows.COMMIT_DEADLINE` has its connection cut (`persistence.deadline`) and fails
like any other; from a failed commit until a commit or a probe (every `PROBE_INTERVAL`) goes
through, `healthy` is False and actors refuse commands at once (503, retry) instead of
queueing them behind the outage.

A failed transaction acknowledges nothing: its tickets fail, every queued append is failed and
dropped (those of its actors have sequence numbers that follow the lost ones; the others would
only wait on the same database), and the actor keys of all of them are poisoned (appends fail
at once, snapshots are dropped) until the actor has rebuilt from what is durable and calls
`reopen`. The queue and the poisoned keys are shared by the loop
and the thread under one lock, so a failed group's actors are poisoned before the thread takes
another group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus
from sqlalchemy import Engine

from engine.errors import JournalFailed
from engine.journal import ActorHistory, CommitTicket, FailureListener, JournalRecord, Snapshot
from engine.loop import Handoff, running
from engine.views import JournalStats
from persistence.history import load_histories
from persistence.lease import Fenced, Lease
from persistence.rows import EncodedRow, GroupWriter, SnapshotRow, encode_records, encode_state

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # events per group at most
LINGER = 0.0  # seconds to wait for company after an idle spell (none: see the docstring)
PROBE_INTERVAL = 0.25  # seconds between two tries to reach the database after a failed commit


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


_Entry = _Append | _SnapshotWrite


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
    """The engine's journal port on a SQL database, with group commit by a writer thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = MAX_BATCH,
        linger: float = LINGER,
        lease: Lease | None = None,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.linger = linger
        self.lease = lease
        self.stats = WriterStats()
        self._writer = GroupWriter(engine, lease)
        # Shared with the writer thread; every access holds `_lock`.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queue: deque[_Entry] = deque()
        self._in_flight: list[_Entry] = []
        self._queued_events = 0
        self._poisoned: set[str] = set()
        self._closing = False
        self._abandoned = False
        self._thread_waits = False
        # False from a failed commit until a commit or a probe of the database succeeds.
        # Written by the writer thread only; a plain attribute, as every ask reads it.
        self.healthy = True
        # Our lease was taken over (persistence/lease.py): unhealthy for good.
        self.fenced = False
        self.last_error: str | None = None
        # The event loop's side.
        self._listeners: list[FailureListener] = []
        self._committed: list[Callable[[list[EncodedRow]], None]] = []
        self._handoff: Handoff | None = None  # runs a callback on the loop, from the thread
        self._stopped = anyio.Event()

    # -- the port (event loop) ---------------------------------------------------------------

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        ticket = CommitTicket()
        keys = frozenset(record.actor_key for record in records)
        try:
            rows = encode_records(records)
        except Exception as error:
            # The actor has applied an event the journal cannot store: it must not keep it
            # in memory, so it is poisoned and rebuilds from what is durable.
            log.exception("events of %s cannot be encoded", sorted(keys))
            with self._lock:
                fresh = self._poison_locked(keys)
            ticket.fail(JournalFailed(f"an event could not be stored: {error}"))
            self._tell_poisoned(fresh)
            return ticket
        entry = _Append(rows, ticket, keys, time.perf_counter())
        with self._lock:
            if self._closing:
                refusal = "the journal is closed"
            elif keys & self._poisoned:
                refusal = "an earlier commit of this actor failed; it is rebuilding"
                fresh = self._poison_locked(keys)
            else:
                self._queue.append(entry)
                self._queued_events += len(entry.rows)
                if self._thread_waits:
                    self._work.notify()
                return ticket
        ticket.fail(JournalFailed(refusal))
        if refusal != "the journal is closed":
            self._tell_poisoned(fresh)
        return ticket

    def save_snapshot(self, snapshot: Snapshot) -> None:
        state = encode_state(snapshot.state)
        with self._lock:
            if self._closing or snapshot.actor_key in self._poisoned:
                return  # the state may hold events that will never be durable
            self._queue.append(_SnapshotWrite(snapshot.actor_key, snapshot.actor_seq, state))
            if self._thread_waits:
                self._work.notify()

    def report(self) -> JournalStats:
        stats = self.stats
        return JournalStats(
            self.healthy,
            None if self.healthy else self.last_error or "the journal cannot commit",
            stats.commits,
            stats.events,
            stats.snapshots,
            stats.failures,
        )

    def on_failure(self, listener: FailureListener) -> None:
        self._listeners.append(listener)

    def on_committed(self, listener: Callable[[list[EncodedRow]], None]) -> None:
        """Call `listener(rows)` on the event loop after each group commit, with the group's
        journal rows (actor key, actor seq, kind, JSON payload) in commit order: what a
        cluster's shard publishes to the gateways."""
        self._committed.append(listener)

    def reopen(self, actor_key: str) -> None:
        with self._lock:
            self._poisoned.discard(actor_key)

    async def load(
        self, actor_keys: Iterable[str] | None = None, *, snapshots: bool = True
    ) -> dict[str, ActorHistory]:
        keys = None if actor_keys is None else list(dict.fromkeys(actor_keys))
        return await anyio.to_thread.run_sync(load_histories, self.engine, keys, snapshots)

    # -- running -----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the writer thread: commit queued groups until `close` is called and the queue
        is drained. Cancelled, it fails whatever was not committed and waits for the thread."""
        self._handoff = running().handoff()
        thread = threading.Thread(target=self._thread_main, name="journal-writer", daemon=True)
        thread.start()
        task_status.started()
        try:
            await self._stopped.wait()
        finally:
            if not self._stopped.is_set():
                self._abandon()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(thread.join)

    async def close(self) -> None:
        """Stop taking appends and wait until everything queued has been committed (or failed)."""
        with self._lock:
            self._closing = True
            self._work.notify()
        await self._stopped.wait()

    def _abandon(self) -> None:
        """The writer's owner was cancelled: answer every caller still waiting with a failure
        rather than never; a group cut off mid-commit may or may not be on disk, so it is not
        acknowledged either way (its late resolution finds the tickets already failed)."""
        with self._lock:
            self._closing = self._abandoned = True
            entries = [*self._in_flight, *self._queue]
            self._queue.clear()
            self._queued_events = 0
            self._work.notify()
        stopped = JournalFailed("the journal writer stopped")
        for entry in entries:
            if isinstance(entry, _Append):
                entry.ticket.fail(stopped)

    # -- the writer thread -------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if not batch:
                    self._probe()
                    continue
                try:
                    self._write(batch)
                except Exception as error:
                    log.exception("journal commit of %d entries failed", len(batch))
                    self._unhealthy(error)
                    self._lose(batch, error)
                else:
                    if not self.fenced:
                        self.healthy, self.last_error = True, None
                    self._post(self._resolve, batch)
                with self._lock:
                    self._in_flight = []
        except BaseException:
            log.exception("the journal writer thread crashed")
            self._post(self._abandon)
            raise
        finally:
            self._writer.close()
            self._post(self._stopped.set)

    def _probe(self) -> None:
        """Try the database after a failed commit, so that commands are taken again as soon
        as it answers (while the journal is unhealthy, actors refuse them at once)."""
        if self.fenced:
            return
        try:
            self._writer.probe()
        except Exception as error:
            self._unhealthy(error)
        else:
            log.info("journal: the database answers again")
            if not self.fenced:
                self.healthy, self.last_error = True, None

    def _unhealthy(self, error: Exception) -> None:
        if isinstance(error, Fenced):
            self.fence(str(error))
            return
        self.healthy = False
        if not self.fenced:
            self.last_error = f"{type(error).__name__}: {error}".strip()[:500]

    def fence(self, why: str) -> None:
        """Another instance owns our lease now: commit nothing more, ever (any thread)."""
        if not self.fenced:
            log.critical("journal fenced: %s; this instance commits nothing more", why)
        self.fenced = True
        self.healthy = False
        self.last_error = f"fenced: {why}"

    def _next_batch(self) -> list[_Entry] | None:
        """Wait for work; None once closing with nothing left (or abandoned); an empty batch
        when the journal is unhealthy and idle for `PROBE_INTERVAL`: time to probe."""
        with self._lock:
            idle = False
            while not self._queue and not self._closing:
                idle = True
                self._thread_waits = True
                woken = self._work.wait(None if self.healthy else PROBE_INTERVAL)
                self._thread_waits = False
                if not woken and not self._queue and not self._closing:
                    return []
            if idle and self.linger > 0:
                # Linger only after idling: what queued up during the previous commit has
                # already waited one commit long, and that group has formed by itself.
                until = time.monotonic() + self.linger
                while not self._closing and self._queued_events < self.max_batch:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._work.wait(left)
            if self._abandoned or not self._queue:
                return None
            batch = self._in_flight = self._take_batch_locked()
            return batch

    def _take_batch_locked(self) -> list[_Entry]:
        batch: list[_Entry] = []
        events = 0
        while self._queue and (events < self.max_batch or not batch):
            entry = self._queue.popleft()
            batch.append(entry)
            if isinstance(entry, _Append):
                events += len(entry.rows)
        self._queued_events -= events
        return batch

    def _write(self, batch: list[_Entry]) -> None:
        """One transaction for the whole group (in the writer thread)."""
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

    def _lose(self, batch: list[_Entry], error: Exception) -> None:
        """A group failed: fail it and everything queued behind it, and poison every actor
        concerned before the next group. Queued appends of other actors fail too: the
        database that refused this group would make them wait for their own failure (a
        deadline, a reconnect) while their callers wait; they get a prompt 503 instead."""
        failed = [entry for entry in batch if isinstance(entry, _Append)]
        with self._lock:
            failed += [entry for entry in self._queue if isinstance(entry, _Append)]
            self._queue.clear()  # snapshots too: their actors rebuild, and snapshot again
            self._queued_events = 0
            lost: set[str] = set()
            for entry in failed:
                lost |= entry.keys
            fresh = self._poison_locked(lost)
        self.stats.failures += 1
        failure = JournalFailed(f"the journal could not commit: {type(error).__name__}")
        self._post(self._fail, failed, failure, fresh)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback` on the event loop (in the order posted)."""
        assert self._handoff is not None
        try:
            self._handoff(callback, *args)
        except RuntimeError:  # the loop is gone: nobody is left to tell
            log.warning("journal writer: the event loop is gone")

    # -- back on the event loop --------------------------------------------------------------

    def _resolve(self, batch: list[_Entry]) -> None:
        done = time.perf_counter()
        for entry in batch:
            if isinstance(entry, _Append):
                self.stats.latencies.append(done - entry.queued_at)
                entry.ticket.resolve()
        if self._committed:
            rows = [row for entry in batch if isinstance(entry, _Append) for row in entry.rows]
            for listener in self._committed:
                try:
                    listener(rows)
                except Exception:
                    log.exception("journal commit listener failed")

    def _fail(self, failed: list[_Append], failure: JournalFailed, fresh: set[str]) -> None:
        for entry in failed:
            entry.ticket.fail(failure)
        self._tell_poisoned(fresh)

    def _poison_locked(self, keys: Iterable[str]) -> set[str]:
        fresh = set(keys) - self._poisoned
        self._poisoned |= fresh
        return fresh

    def _tell_poisoned(self, fresh: set[str]) -> None:
        if not fresh:
            return
        for listener in self._listeners:
            try:
                listener(fresh)
            except Exception:
                log.exception("journal failure listener failed")
