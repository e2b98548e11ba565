"""Sightings: which waiting buyers' pages are open, told to their rooms in batches.

A concert's room abandons a waiting token whose page is neither polled nor connected for
`ABANDON_SECONDS`. Each poll of `GET /api/queue/tokens/me` notes its token here, and every
`CONNECTED_EVERY` seconds (or a fifth of `ABANDON_SECONDS` if shorter) so does every open
websocket of a waiting or pre-queued token; once a second the notes leave as one `Seen`
command per room. `Seen` is never journaled (a restart only delays an abandonment, see
engine/domain/concert_room.py): a poll costs a set insertion here, not a journal write.
"""

from __future__ import annotations

import logging
import time

import anyio

from engine.errors import EngineError
from engine.face import Engine, Seen
from web.hub.registry import Registry

log = logging.getLogger(__name__)

SIGHTINGS_EVERY = 1.0  # seconds between two batches
CONNECTED_EVERY = 10.0  # seconds between two notes of every open websocket, at most


class Sightings:
    def __init__(self, registry: Registry, abandon_seconds: float) -> None:
        self.registry = registry
        # Well within the abandonment's delay, however short it is configured.
        self.connected_every = min(CONNECTED_EVERY, abandon_seconds / 5)
        self.engine: Engine | None = None
        self._pending: dict[str, set[int]] = {}
        self._connected_at = 0.0

    def note(self, concert_id: str, seq: int) -> None:
        """The page of token `seq` of `concert_id`'s room is open now."""
        seqs = self._pending.get(concert_id)
        if seqs is None:
            seqs = self._pending[concert_id] = set()
        seqs.add(seq)

    def note_connected(self) -> None:
        """Every open websocket of a waiting or pre-queued token of a concert's room."""
        for key in self.registry.waiting:
            if isinstance(key, tuple):
                self.note(*key)

    async def run(self) -> None:
        """Send the sightings once a second, until cancelled."""
        while True:
            await anyio.sleep(SIGHTINGS_EVERY)
            now = time.monotonic()
            if now - self._connected_at >= self.connected_every:
                self._connected_at = now
                self.note_connected()
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        engine = self.engine
        if engine is None or not engine.ready:
            return
        for concert_id, seqs in pending.items():
            try:
                await engine.ask(Seen(tuple(seqs), concert_id))
            except EngineError as error:  # best effort: the next poll notes them again
                log.debug("sightings of %s not told: %s", concert_id, error)
