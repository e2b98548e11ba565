"""The actor of one concert date: serializes every command on its seats."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.actor import Actor
from engine.catalog import ConcertDateInfo
from engine.clock import Clock
from engine.config import EngineConfig
from engine.domain.reservation import Reservation, reservation_of
from engine.domain.seat_map import HELD, Locked, SeatMap
from engine.journal import Journal


@dataclass(frozen=True, slots=True)
class Hold:
    user_id: str
    seat: int


@dataclass(frozen=True, slots=True)
class Release:
    user_id: str
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Lock:
    user_id: str
    reservation_ids: tuple[str, ...]
    payment_id: str


@dataclass(frozen=True, slots=True)
class Unlock:
    payment_id: str


@dataclass(frozen=True, slots=True)
class Sell:
    payment_id: str


class ConcertDateActor(Actor[SeatMap]):
    kind = "date"

    def __init__(
        self, info: ConcertDateInfo, config: EngineConfig, *, journal: Journal, clock: Clock
    ) -> None:
        self.info = info
        self.config = config
        super().__init__(
            info.key,
            journal=journal,
            clock=clock,
            **config.actor_options(),
        )

    def initial_state(self) -> SeatMap:
        return SeatMap(
            self.info.concert_id,
            self.info.date,
            self.info.seats,
            self.info.price,
            hold_seconds=self.config.hold_seconds,
            max_holds_per_user=self.config.max_holds_per_user,
        )

    def state_from_snapshot(self, data: dict[str, Any]) -> SeatMap:
        seat_map = self.initial_state()
        seat_map.load_snapshot(data)
        return seat_map

    def decide(self, command: Any) -> Any:
        now = self.clock.now()
        match command:
            case Hold(user_id=user, seat=number):
                self.emit(self.state.hold(user, number, now))
                return reservation_of(self.state, self.state.seats[number - 1])
            case Release(user_id=user, reservation_id=rid):
                self.emit(self.state.release(user, rid, now))
                return None
            case Lock(user_id=user, reservation_ids=rids, payment_id=pid):
                events, locked = self.state.lock(user, rids, pid, now)
                self.emit(events)
                return locked
            case Unlock(payment_id=pid):
                self.emit(self.state.unlock(pid, now))
                return None
            case Sell(payment_id=pid):
                self.emit(self.state.sell(pid))
                return [
                    reservation_of(self.state, s) for s in self.state.seats if s.payment_id == pid
                ]
        raise TypeError(f"unknown command {command!r}")

    def on_expire_due(self, now: float) -> Any:
        self.emit(self.state.expire_due(now))
        return None

    def reservations_of(self, user_id: str) -> list[Reservation]:
        return [reservation_of(self.state, s) for s in self.state.seats_of(user_id)]


def live_holds(
    actors: Iterable[ConcertDateActor], user_id: str
) -> Iterator[tuple[ConcertDateActor, Release]]:
    """The release command of every hold `user_id` still has, with the date that takes it."""
    for actor in actors:
        for seat in actor.state.seats_of(user_id):
            if seat.status == HELD and seat.reservation_id is not None:
                yield actor, Release(user_id, seat.reservation_id)


__all__ = [
    "ConcertDateActor",
    "Hold",
    "Lock",
    "Locked",
    "Release",
    "Sell",
    "Unlock",
    "live_holds",
]
