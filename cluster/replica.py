"""A gateway's read model: a copy of every actor, fed by the shards' committed events.

The copy is the engine itself, never run: an `EngineSystem` that owns every actor, restored
from the journal at start and then moved forward by each committed event the hosts publish
(`Actor.follow`), so its read views (the token gate, seat maps, dates, balances, a buyer's
reservations, a payment by key) are the engine's own, a few milliseconds behind the shards.
Nothing is decided here and nothing is appended: commands go to the shards.

Staleness: a view lags the commit of what it shows by the time the event takes to come over
the bus (milliseconds). A missed event is found at the actor's next one (a gap in its
sequence numbers) or, if the actor goes quiet, by the heads check: every `HEADS_EVERY` seconds
the hosts' latest sequence numbers are compared with the copy's, and an actor still behind at
two checks running is reloaded from the journal. So a view is at most about twice
`HEADS_EVERY` behind even when the bus loses messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine

from engine.actor import Actor, EventListener
from engine.catalog import ConcertInfo
from engine.config import EngineConfig
from engine.domain.waiting_room import WaitingRoom
from engine.errors import JournalFailed
from engine.events import Event
from engine.journal import ActorHistory, CommitTicket, FailureListener, JournalRecord, Snapshot
from engine.system import EngineSystem
from engine.views import JournalStats, Origin
from persistence.history import load_histories
from persistence.rows import EncodedRow, decode_event

log = logging.getLogger(__name__)

HEADS_EVERY = 5.0  # seconds between two comparisons with the hosts' latest sequence numbers
TOKEN_WAIT = 2.0  # seconds a join's answer waits at most for the copy to know its token


class ReadOnlyJournal:
    """The copy's journal: it reads the shared journal and never writes."""

    healthy = True

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, records: Sequence[JournalRecord]) -> CommitTicket:
        ticket = CommitTicket()
        ticket.fail(JournalFailed("a gateway's copy of the actors appends nothing"))
        return ticket

    def report(self) -> JournalStats:
        return JournalStats(True, None, 0, 0, 0, 0)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        pass

    def on_failure(self, listener: FailureListener) -> None:
        pass

    def reopen(self, actor_key: str) -> None:
        pass

    async def load(
        self, actor_keys: Iterable[str] | None = None, *, snapshots: bool = True
    ) -> dict[str, ActorHistory]:
        import anyio.to_thread

        keys = None if actor_keys is None else list(actor_keys)
        return await anyio.to_thread.run_sync(
            lambda: load_histories(self.engine, keys, snapshots=snapshots)
        )


class Replica:
    def __init__(self, engine: Engine, config: EngineConfig, catalog: Iterable[ConcertInfo]):
        self.journal = ReadOnlyJournal(engine)
        self.system = EngineSystem(self.journal, config=config, catalog=catalog)
        self._actors: dict[str, Actor[Any]] = {a.key: a for a in self.system.all_actors()}
        self.listeners: list[EventListener] = []
        self._stale: set[str] = set()  # behind the hosts at the last heads check
        self._reloading: set[str] = set()
        self.events = 0
        self.reloads = 0

    async def load(self) -> None:
        """Restore every actor from the journal (at the gateway's start)."""
        histories = await self.journal.load()
        for actor in self._actors.values():
            await actor.recover(histories.get(actor.key))

    def add_concert(self, concert: ConcertInfo) -> list[str]:
        """Register a concert put on sale; the keys of the dates new to the copy."""
        before = set(self._actors)
        self.system.register_concert(concert)
        self._actors = {a.key: a for a in self.system.all_actors()}
        return sorted(set(self._actors) - before)

    async def until_token(
        self, seq: int, concert_id: str | None = None, timeout: float = TOKEN_WAIT
    ) -> None:
        """Return once the copy of the token's room (the site-wide one, or `concert_id`'s)
        knows the token `seq` (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while seq not in self._room_state(concert_id).user_of and time.monotonic() < deadline:
            await asyncio.sleep(0.002)  # a reload replaces the state: looked up again

    def _room_state(self, concert_id: str | None) -> WaitingRoom:
        if concert_id is None:
            return self.system.room.state
        room = self.system.room_actor(concert_id)
        return room.state if room is not None else self.system.room.state

    def seqs(self) -> dict[str, int]:
        return {key: actor.seq for key, actor in self._actors.items()}

    # -- the shards' events ----------------------------------------------------------------

    def on_rows(self, rows: list[EncodedRow]) -> list[str]:
        """Apply committed rows; tell the listeners; the keys found behind (to reload)."""
        behind: list[str] = []
        batches: dict[str, tuple[Origin, list[Event]]] = {}
        for key, seq, kind, payload in rows:
            actor = self._actors.get(key)
            if actor is None or key in self._reloading:
                continue
            event = decode_event(kind, payload)
            if not actor.follow(seq, event):
                behind.append(key)
                continue
            self.events += 1
            batches.setdefault(key, (actor.origin, []))[1].append(event)
        for origin, events in batches.values():
            for listener in self.listeners:
                try:
                    listener(origin, events)
                except Exception:
                    log.exception("listener failed on %s", origin.key)
        return behind

    def behind(self, heads: dict[str, int]) -> list[str]:
        """The keys behind the hosts' `heads` at this check and the previous one."""
        seqs = self.seqs()
        now = {key for key, head in heads.items() if seqs.get(key, head) < head}
        lagging, self._stale = now & self._stale, now
        return sorted(lagging)

    async def reload(self, keys: Iterable[str]) -> None:
        """Bring these actors up to what the journal holds."""
        wanted = [key for key in keys if key in self._actors and key not in self._reloading]
        if not wanted:
            return
        self._reloading.update(wanted)
        try:
            histories = await self.journal.load(wanted)
            for key in wanted:
                await self._actors[key].recover(histories.get(key))
            self.reloads += len(wanted)
        finally:
            self._reloading.difference_update(wanted)
