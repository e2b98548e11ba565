"""The actor of one concert date: serializes every command on its seats."""

from __future__ import annotations

from typing import Any

from engine.actor import Actor
from engine.catalog import ConcertDateInfo
from engine.clock import Clock
from engine.commands import Command, Hold, Lock, Release, Sell, SoldTo, Unlock
from engine.config import EngineConfig
from engine.domain.reservation import reservation_of, seat_map_view
from engine.domain.seat_map import SOLD, SeatMap
from engine.journal import Journal
from engine.views import HoldOutcome, Origin, Reservation, SeatMapView


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
            origin=Origin("date", info.key, info.concert_id, info.date),
            **config.actor_options(),
        )
        self._view: tuple[int, SeatMapView] | None = None

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

    def decide(self, command: Command[Any]) -> Any:
        now = self.clock.now()
        state = self.state
        match command:
            case Hold(user_id=user, seat=number):
                events = state.hold(user, number, now)
                self.emit(events)
                return HoldOutcome(reservation_of(state, state.seats[number - 1]), bool(events))
            case Release(user_id=user, reservation_id=rid):
                self.emit(state.release(user, rid, now))
                return None
            case Lock(user_id=user, reservation_ids=rids, payment_id=pid):
                events, locked = state.lock(user, rids, pid, now)
                self.emit(events)
                return locked
            case Unlock(payment_id=pid):
                self.emit(state.unlock(pid, now))
                return None
            case Sell(payment_id=pid):
                self.emit(state.sell(pid))
                return self._sold_to(pid)
            case SoldTo(payment_id=pid):
                return self._sold_to(pid)
        raise TypeError(f"unknown command {command!r}")

    def on_expire_due(self, now: float) -> Any:
        self.emit(self.state.expire_due(now))
        return None

    def _sold_to(self, payment_id: str) -> tuple[Reservation, ...]:
        state = self.state
        return tuple(
            reservation_of(state, s)
            for s in state.seats
            if s.status == SOLD and s.payment_id == payment_id
        )

    # -- read views ----------------------------------------------------------------------------

    def view(self) -> SeatMapView:
        """The seat map as it is now; made once per change of the state."""
        cached = self._view
        if cached is not None and cached[0] == self.version:
            return cached[1]
        view = seat_map_view(self.state)
        self._view = (self.version, view)
        return view

    def reservations_of(self, user_id: str) -> list[Reservation]:
        return [reservation_of(self.state, s) for s in self.state.seats_of(user_id)]
