"""The site-wide waiting-room actor: joins, admissions on its timer, completion, leaving,
configuration. A concert's own room (engine/actors/room.py) extends it."""

from __future__ import annotations

import dataclasses
import functools
import secrets
from typing import Any, ClassVar, TypeVar

from engine.actor import Actor
from engine.clock import Clock
from engine.commands import Command, CompleteToken, Configure, Join, Leave, OpenRoom
from engine.config import EngineConfig
from engine.domain.waiting_room import Admitted, RoomOpened, WaitingRoom
from engine.errors import TOKEN_INVALID, Refused
from engine.journal import ActorHistory, Journal
from engine.views import ActorKind, Origin, QueuePosition, RoomSettings, TokenView

KEY = "waiting-room"


R = TypeVar("R", bound=WaitingRoom)


class BaseRoomActor(Actor[R]):
    """What the site-wide room and a concert's room share: joins, admission, completion,
    leaving, and the gate's view of a token."""

    kind: ClassVar[ActorKind] = "waiting-room"

    def __init__(
        self,
        config: EngineConfig,
        *,
        journal: Journal,
        clock: Clock,
        key: str = KEY,
        origin: Origin | None = None,
    ) -> None:
        self.config = config
        super().__init__(
            key,
            journal=journal,
            clock=clock,
            origin=origin,
            **config.actor_options(),
        )
        self._admitting: set[int] = set()

    def state_from_snapshot(self, data: dict[str, Any]) -> R:
        room = self.initial_state()
        room.load_snapshot(data)
        return room

    def decide(self, command: Command[Any]) -> Any:
        match command:
            case OpenRoom():
                if not self.state.secret:
                    self.emit([RoomOpened(secrets.token_hex(32))])
                return None
            case Join(user_id=user):
                events = self.state.join(user, self.clock.now())
                self.emit(events)
                view = self.state.view(self.state.seq_of[user], self.clock.now())
                return dataclasses.replace(view, new=bool(events))
            case CompleteToken(user_id=user):
                current = self.state.current_seq(user)
                if current is not None:
                    self.emit(self.state.complete(current))
                return None
            case Configure(changes=changes):
                self.emit(self.state.configure(**dict(changes)))
                return self.state.settings
            case Leave(seq=seq):
                return self.leave(seq)
        raise TypeError(f"unknown command {command!r}")

    def leave(self, seq: int) -> TokenView:
        if seq not in self.state.user_of:
            raise Refused(TOKEN_INVALID, "unknown queue token")
        now = self.clock.now()
        self.emit(self.state.leave(seq, now))
        return self.state.view(seq, now)

    def on_expire_due(self, now: float) -> Any:
        events = self.state.tick(now)
        self.emit(events)
        for event in events:
            if isinstance(event, Admitted):
                # Admitted in memory, not yet durably: the gate keeps these tokens waiting
                # until the commit, as a failed one would take the admission back.
                self._admitting.update(event.seqs)
                done = functools.partial(self._admitting.difference_update, event.seqs)
                self._last_ticket.on_commit(done)
        return None

    def restore(self, history: ActorHistory | None) -> None:
        super().restore(history)
        self._admitting.clear()

    def state_weight(self) -> int:
        return len(self.state.user_of)

    # -- read views (no mailbox, no waiting behind writes) -------------------------------------

    def lookup(self, token: str) -> TokenView | None:
        """The token gate's view of a token; None for anything forged or malformed. A token
        whose admission is not durable yet still reads WAITING (without a rank)."""
        view = self.state.lookup(token, self.clock.now())
        if view is not None and self._admitting and view.seq in self._admitting:
            return dataclasses.replace(view, status="WAITING", active_until=None)
        return view

    def position(self, seq: int) -> QueuePosition | None:
        """Rank and ETA of a waiting token; None unless it is waiting."""
        room = self.state
        rank = room.rank_of(seq)
        return QueuePosition(rank, room.eta(rank, self.clock.now())) if rank is not None else None

    def user_of(self, seq: int) -> str | None:
        return self.state.user_of.get(seq)


class WaitingRoomActor(BaseRoomActor[WaitingRoom]):
    """The site-wide room: every concert without an on-sale of its own."""

    def initial_state(self) -> WaitingRoom:
        c = self.config
        return WaitingRoom(
            RoomSettings(
                c.admit_batch, c.admit_interval_seconds, c.max_active, c.active_ttl_seconds
            )
        )
