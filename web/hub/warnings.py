"""`hold.expiring`: a warning to a connected holder shortly before the hold lapses.

One heap entry per hold made by a user who is connected at the time (the heap stays as small
as the connected crowd's holds, however many holds plain HTTP clients make), and one task
that sleeps until the earliest is due. When due, the seat map's read view says whether the
hold still stands (not released, paid or expired meanwhile) before anyone is warned.
"""

from __future__ import annotations

import heapq
import math

import anyio

from engine.face import Engine, SeatHeld
from web.hub.registry import Registry
from web.schemas import HoldExpiringMessage

HOLD_WARNING_SECONDS = 60.0  # this long before a hold lapses (or at half-time if shorter)


class HoldWarnings:
    def __init__(self, registry: Registry, hold_seconds: float) -> None:
        self.registry = registry
        self.lead = min(HOLD_WARNING_SECONDS, hold_seconds / 2)
        self.engine: Engine | None = None
        # (warn at, concert id, date, seat, reservation id, user)
        self._heap: list[tuple[float, str, str, int, str, str]] = []
        self._wakeup: anyio.Event | None = None

    def schedule(self, concert_id: str, date: str, held: SeatHeld) -> None:
        warn_at = held.until - self.lead
        entry = (warn_at, concert_id, date, held.seat, held.reservation_id, held.user_id)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry and self._wakeup is not None:
            self._wakeup.set()

    async def run(self) -> None:
        """Warn whoever is due, then sleep until the next is, until cancelled."""
        while True:
            engine = self.engine
            now = engine.now() if engine is not None else 0.0
            while engine is not None and self._heap and self._heap[0][0] <= now:
                self._warn(engine, *heapq.heappop(self._heap)[1:], now)
            delay = self._heap[0][0] - now if self._heap else math.inf
            self._wakeup = wakeup = anyio.Event()
            with anyio.move_on_after(delay):
                await wakeup.wait()

    def _warn(
        self,
        engine: Engine,
        concert_id: str,
        date: str,
        number: int,
        rid: str,
        user: str,
        now: float,
    ) -> None:
        conns = self.registry.by_user.get(user)
        seat_map = engine.seat_map(concert_id, date) if conns else None
        if not conns or seat_map is None:
            return
        seat = seat_map.seats[number - 1]
        if seat.status != "HELD" or seat.reservation_id != rid:
            return  # released, paid or already expired: nothing to warn about
        if seat.expires_at is None:
            return
        message = HoldExpiringMessage(reservation_id=rid, seconds_left=round(seat.expires_at - now))
        text = message.model_dump_json()
        for conn in conns:
            conn.push(("expiring", rid), text)
