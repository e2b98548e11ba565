"""Engine events to websocket messages: each committed event reaches only the connections it
concerns, found through the registry's indexes.

- queue events (the site-wide room and each concert's): `queue.admitted`, `queue.expired`
  (active window over, or abandoned), `queue.completed` to the token's connections;
  admissions, departures, new settings and an on-sale's start mark the ranks dirty;
- seat events (a date): `seat.changed` to the date's followers (a newer status of a seat
  replaces an unsent one), `hold.expired` to the holder, and a hold made by a connected user
  schedules its `hold.expiring` warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.face import (
    Abandoned,
    ActiveExpired,
    Admitted,
    Event,
    HoldExpired,
    Left,
    Origin,
    RoomConfigured,
    RoomScheduled,
    SeatHeld,
    Shuffled,
    TokenCompleted,
    seat_changes,
)
from web.hub.connection import TokenKey
from web.hub.ranks import RankPass
from web.hub.registry import Registry
from web.hub.warnings import HoldWarnings
from web.schemas import (
    HoldExpiredMessage,
    QueueAdmittedMessage,
    QueueCompletedMessage,
    QueueExpiredMessage,
    SeatChangedMessage,
    instant,
)

QUEUE_EXPIRED = QueueExpiredMessage().model_dump_json()
QUEUE_COMPLETED = QueueCompletedMessage().model_dump_json()


def _site_key(seq: int) -> TokenKey:
    return seq


class Fanout:
    def __init__(self, registry: Registry, ranks: RankPass, warnings: HoldWarnings) -> None:
        self.registry = registry
        self.ranks = ranks
        self.warnings = warnings

    def on_events(self, origin: Origin, events: Sequence[Event]) -> None:
        if origin.kind == "date":
            assert origin.concert_id is not None and origin.date is not None
            self._seat_events(origin.concert_id, origin.date, events)
        elif origin.kind == "waiting-room":
            self._queue_events(events, _site_key)
        elif origin.kind == "room":
            assert origin.concert_id is not None
            concert_id = origin.concert_id
            self._queue_events(events, lambda seq: (concert_id, seq))

    def _queue_events(self, events: Sequence[Event], key: Callable[[int], TokenKey]) -> None:
        registry = self.registry
        for event in events:
            match event:
                case Admitted(seqs=seqs, active_until=until):
                    text = QueueAdmittedMessage(active_until=instant(until)).model_dump_json()
                    for seq in seqs:
                        who = key(seq)
                        registry.waiting.discard(who)
                        registry.send(registry.by_seq.get(who, ()), text)
                    self.ranks.mark_dirty()
                case ActiveExpired(seqs=seqs):
                    for seq in seqs:
                        registry.send(registry.by_seq.get(key(seq), ()), QUEUE_EXPIRED)
                case TokenCompleted(seq=seq):
                    registry.send(registry.by_seq.get(key(seq), ()), QUEUE_COMPLETED)
                case Abandoned(seqs=seqs):
                    for seq in seqs:
                        who = key(seq)
                        registry.waiting.discard(who)
                        registry.send(registry.by_seq.get(who, ()), QUEUE_EXPIRED)
                    self.ranks.mark_dirty()  # everyone behind moved up
                case Left(seq=seq):
                    registry.waiting.discard(key(seq))
                    self.ranks.mark_dirty()
                case RoomConfigured() | RoomScheduled() | Shuffled():
                    # The ETAs move with the settings; at the start the pre-queue gets ranks.
                    self.ranks.mark_dirty()

    def _seat_events(self, concert_id: str, date: str, events: Sequence[Event]) -> None:
        registry = self.registry
        key = (concert_id, date)
        followers = registry.by_date.get(key)
        for event in events:
            if isinstance(event, SeatHeld) and event.user_id in registry.by_user:
                self.warnings.schedule(concert_id, date, event)
            elif isinstance(event, HoldExpired):
                text = HoldExpiredMessage(reservation_id=event.reservation_id).model_dump_json()
                registry.send(registry.by_user.get(event.user_id, ()), text)
            if not followers:
                continue
            numbers, status = seat_changes(event)
            for number in numbers:
                text = SeatChangedMessage(
                    concert_id=concert_id, date=date, seat=number, status=status
                ).model_dump_json()
                for conn in followers:
                    conn.push(("seat", concert_id, date, number), text)
