"""The one waiting-room actor: joins, admissions on its timer, completion, configuration."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

from engine.actor import Actor
from engine.clock import Clock
from engine.config import EngineConfig
from engine.domain.waiting_room import RoomOpened, RoomSettings, TokenView, WaitingRoom
from engine.journal import Journal

KEY = "waiting-room"


@dataclass(frozen=True, slots=True)
class Open:
    """Sent once at start: give a new room its token secret."""


@dataclass(frozen=True, slots=True)
class Join:
    user_id: str


@dataclass(frozen=True, slots=True)
class Complete:
    user_id: str


@dataclass(frozen=True, slots=True)
class Configure:
    changes: tuple[tuple[str, Any], ...]


class WaitingRoomActor(Actor[WaitingRoom]):
    kind = "waiting-room"

    def __init__(self, config: EngineConfig, *, journal: Journal, clock: Clock) -> None:
        self.config = config
        super().__init__(
            KEY,
            journal=journal,
            clock=clock,
            **config.actor_options(),
        )

    def initial_state(self) -> WaitingRoom:
        c = self.config
        return WaitingRoom(
            RoomSettings(
                c.admit_batch, c.admit_interval_seconds, c.max_active, c.active_ttl_seconds
            )
        )

    def state_from_snapshot(self, data: dict[str, Any]) -> WaitingRoom:
        room = self.initial_state()
        room.load_snapshot(data)
        return room

    def decide(self, command: Any) -> Any:
        match command:
            case Open():
                if not self.state.secret:
                    self.emit([RoomOpened(secrets.token_hex(32))])
                return None
            case Join(user_id=user):
                events = self.state.join(user, self.clock.now())
                self.emit(events)
                view = self.state.view(self.state.seq_of[user], self.clock.now())
                return dataclasses.replace(view, new=bool(events))
            case Complete(user_id=user):
                current = self.state.current_seq(user)
                if current is not None:
                    self.emit(self.state.complete(current))
                return None
            case Configure(changes=changes):
                self.emit(self.state.configure(**dict(changes)))
                return self.state.settings
        raise TypeError(f"unknown command {command!r}")

    def on_expire_due(self, now: float) -> Any:
        self.emit(self.state.tick(now))
        return None

    def state_weight(self) -> int:
        return len(self.state.user_of)

    def lookup(self, token: str) -> TokenView | None:
        """Read view for the token gate: no mailbox, no waiting behind writes."""
        seq = self.state.seq_for(token)
        return self.state.view(seq, self.clock.now(), token=token) if seq is not None else None
