"""Probe actors that isolate what one turn of the actor runtime costs, piece by piece.

Each probe is a real `engine.actor.Actor` with an empty state; only the handler differs:
it does nothing, emits one event, refuses, or moves its deadline later every tenth turn. Run
side by side with the bare round trip they split a hot date's cost per command into the
runtime, the journal hand-off, the refusal path and the timer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio

from engine.actor import Actor
from engine.clock import SystemClock
from engine.commands import Command
from engine.domain.waiting_room import RoomOpened
from engine.errors import SEAT_TAKEN, Refused
from engine.events import Event
from engine.journal import MemoryJournal
from engine.views import Scalar

PROBES = ("no-op", "emit", "refuse", "later-deadline")


@dataclass(frozen=True, slots=True)
class Probe(Command[int]):
    """One probe turn, answered with its index."""

    index: int


class _EmptyState:
    def __init__(self) -> None:
        self.deadline: float | None = None

    def apply(self, event: Event) -> None:
        pass

    def next_deadline(self) -> float | None:
        return self.deadline

    def to_snapshot(self) -> dict[str, Any]:
        return {}

    def summary(self) -> dict[str, Scalar]:
        return {}


class ProbeActor(Actor[_EmptyState]):
    kind = "date"  # a stand-in for a seat map: the actor that takes holds

    def __init__(self, probe: str) -> None:
        super().__init__(probe, journal=MemoryJournal(), clock=SystemClock(), mailbox_size=4096)
        self.probe = probe
        self.turns = 0

    def initial_state(self) -> _EmptyState:
        return _EmptyState()

    def state_from_snapshot(self, data: dict[str, Any]) -> _EmptyState:
        return _EmptyState()

    def decide(self, command: Command[Any]) -> Any:
        assert isinstance(command, Probe)
        self.turns += 1
        if self.probe == "emit":
            self.emit([RoomOpened("probe")])
        elif self.probe == "refuse":
            raise Refused(SEAT_TAKEN, f"seat {command.index} is already taken")
        elif self.probe == "later-deadline" and self.turns % 10 == 0:
            # Like a hold: a deadline 300 s ahead, later than the one already armed.
            self.state.deadline = time.time() + 300 + self.turns
        return command.index


async def serve_probe(probe: str, body: Any) -> Any:
    """Run `body(actor)` against a started probe actor and stop it afterwards."""
    actor = ProbeActor(probe)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        try:
            return await body(actor)
        finally:
            actor.close()
