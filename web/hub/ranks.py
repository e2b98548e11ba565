"""The rank pass: new ranks and ETAs to the waiting websockets, at most once a second.

Ranks are not pushed per event: an admission (or a change of the admission settings) only
marks them dirty, and one pass then reads every waiting connection's position from the
engine's read view (O(log n) each) and pushes those that changed, in slices so that other
work interleaves. An unchanged rank is pushed again only when its ETA drifted from what the
client counts down by itself.
"""

from __future__ import annotations

import json
import logging

import anyio

from engine.face import Engine
from web.hub.connection import Connection
from web.hub.registry import Registry

log = logging.getLogger(__name__)

RANK_PERIOD = 1.0  # seconds between two rank passes: at most one rank message a second
RANK_CHUNK = 500  # connections per slice of a pass
ETA_DRIFT = 2.0  # push an unchanged rank again only if its ETA moved this much
RANK_KEY = "rank"  # the outbox key of rank messages: a newer one replaces an unsent one


def rank_text(rank: int, eta: float | None) -> str:
    """`QueueRankMessage(rank=rank, eta_seconds=eta)` as JSON: the hottest message (10,000
    waiting clients after every admission), so formatted by hand (tests check the two agree)."""
    return f'{{"type":"queue.rank","rank":{rank},"etaSeconds":{json.dumps(eta)}}}'


class RankPass:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.engine: Engine | None = None
        self._dirty: anyio.Event | None = None

    def mark_dirty(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def note(self, conn: Connection, rank: int, eta: float | None, now: float) -> None:
        """Record what `conn` was last told, and tell it."""
        conn.last_rank, conn.last_eta, conn.last_eta_at = rank, eta, now
        conn.push(RANK_KEY, rank_text(rank, eta))

    async def run(self) -> None:
        """Pass whenever ranks are dirty, at most once per `RANK_PERIOD`, until cancelled."""
        self._dirty = anyio.Event()
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            try:
                await self.push_ranks()
            except Exception:
                log.exception("rank pass failed")
            await anyio.sleep(RANK_PERIOD)

    async def push_ranks(self) -> None:
        engine = self.engine
        if engine is None:
            return
        registry = self.registry
        for index, seq in enumerate(list(registry.waiting)):
            if index % RANK_CHUNK == RANK_CHUNK - 1:
                await anyio.sleep(0)
            conns = registry.by_seq.get(seq)
            if not conns or seq not in registry.waiting:
                continue
            # A concert room's token is keyed (concert id, number).
            if isinstance(seq, int):
                position = engine.position(seq)
            else:
                position = engine.position(seq[1], seq[0])
            if position is None:
                continue
            now = engine.now()
            rank, eta = position.rank, position.eta_seconds
            text: str | None = None
            for conn in conns:
                if conn.last_rank == rank and not _eta_moved(conn, eta, now):
                    continue
                text = text or rank_text(rank, eta)
                conn.last_rank, conn.last_eta, conn.last_eta_at = rank, eta, now
                conn.push(RANK_KEY, text)


def _eta_moved(conn: Connection, eta: float | None, now: float) -> bool:
    if (eta is None) != (conn.last_eta is None):
        return True
    if eta is None or conn.last_eta is None:
        return False
    expected = conn.last_eta - (now - conn.last_eta_at)
    return abs(eta - expected) >= ETA_DRIFT
