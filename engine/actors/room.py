"""A concert's own waiting room (`room:<concertId>`): the site-wide room's turns, and its
on-sale's start, leaving, abandonment and proof of work (engine/domain/concert_room.py)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any, ClassVar

from engine.actors.waiting_room import BaseRoomActor
from engine.catalog import room_key
from engine.clock import Clock
from engine.commands import Challenge, Command, Join, OpenRoom, Reschedule, Seen
from engine.config import EngineConfig
from engine.domain.concert_room import ConcertRoom, RoomScheduled
from engine.domain.waiting_room import RoomOpened
from engine.journal import ActorHistory, Journal
from engine.views import ActorKind, OnSale, Origin, RoomFigures, RoomStatusView


class RoomActor(BaseRoomActor[ConcertRoom]):
    kind: ClassVar[ActorKind] = "room"

    def __init__(
        self,
        concert_id: str,
        on_sale: OnSale,
        config: EngineConfig,
        *,
        journal: Journal,
        clock: Clock,
    ) -> None:
        self.concert_id = concert_id
        self.on_sale = on_sale  # as the catalog has it: the room's first schedule
        key = room_key(concert_id)
        super().__init__(
            config,
            journal=journal,
            clock=clock,
            key=key,
            origin=Origin("room", key, concert_id=concert_id),
        )

    def initial_state(self) -> ConcertRoom:
        return ConcertRoom(self.concert_id, self.on_sale, self.config.abandon_seconds)

    def decide(self, command: Command[Any]) -> Any:
        room = self.state
        now = self.clock.now()
        match command:
            case Seen(seqs=seqs):
                room.seen(seqs, now)
                return None
            case OpenRoom():
                if not room.secret:
                    # The schedule journaled with the secret: the catalog's copy may change
                    # later (a concert sent again), the room's own history does not.
                    self.emit([RoomOpened(secrets.token_hex(32)), RoomScheduled.of(self.on_sale)])
                return None
            case Join(user_id=user, challenge=challenge, nonce=nonce):
                self._start_if_due(now)
                work = room.check_work(challenge, nonce, now)
                joined = room.join(user, now)
                self.emit([*joined, *work])
                seq = room.seq_of[user]
                room.seen((seq,), now)
                view = room.view(seq, now)
                return dataclasses.replace(view, new=bool(joined))
            case Challenge():
                return room.challenge(now, secrets.token_bytes(12))
            case Reschedule(changes=changes):
                self.emit(room.reschedule(**dict(changes)))
                return room.on_sale
        return super().decide(command)

    def _start_if_due(self, now: float) -> None:
        if room_start := self.state.start(now, secrets.token_hex(32)):
            self.emit(room_start)

    def on_expire_due(self, now: float) -> Any:
        self._start_if_due(now)
        room = self.state
        sweep = room.next_sweep is not None and now >= room.next_sweep
        super().on_expire_due(now)
        if sweep:
            room.tick_sweep(now)
        return None

    def restore(self, history: ActorHistory | None) -> None:
        super().restore(history)
        self.state.revive(self.clock.now())
        if self._loop is not None:  # a rebuild mid-run: the next sweep moved
            self._arm(self.state.next_deadline())

    # -- read views ------------------------------------------------------------------------

    def status(self) -> RoomStatusView:
        room = self.state
        now = self.clock.now()
        return RoomStatusView(
            concert_id=self.concert_id,
            state=room.state_at(now),
            waiting=len(room.waiting),
            pre_queued=len(room.pre_queued),
            starts_at=room.on_sale.starts_at,
            estimated_wait_seconds=room.estimated_wait(now),
        )

    def figures(self) -> RoomFigures:
        return self.state.figures(self.clock.now())


__all__ = ["RoomActor"]
