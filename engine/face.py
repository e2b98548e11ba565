"""The engine's one face: what the edges (web, the cluster's gateways) may use of the engine.

    engine: Engine = EngineSystem(journal, config=..., catalog=...)   # or a cluster client
    outcome = await engine.ask(Hold(user, concert_id, date, seat))    # -> HoldOutcome
    view = engine.token(token)                                        # -> TokenView | None

- Commands (engine/commands.py) change state: `ask` routes each to the actor that takes it
  and answers once everything the answer depends on is durable. It raises the engine's
  errors (engine/errors.py): `Refused` with a contract code, `Overloaded`,
  `ActorUnavailable`, `JournalFailed`.
- Read views answer at once from the actors' published state (or, in a gateway, from a
  replica fed by their events) and never queue behind writes.
- Events: `subscribe(listener)` calls `listener(origin, events)` after each durable commit;
  the event types are the journal's own (listed here), plain frozen dataclasses.

Everything that crosses the face is a plain value (engine/views.py): no actor reference or
callback, so a gateway in another process can speak to shard hosts with the same types.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Protocol, TypeVar

from engine.actor import EventListener
from engine.catalog import CONCERT_ID, MAX_SEATS, ConcertDateInfo, ConcertInfo
from engine.commands import (
    Challenge,
    Charge,
    Command,
    Configure,
    Hold,
    Join,
    Leave,
    Pay,
    Release,
    Reschedule,
    Seen,
)
from engine.domain.checkout import MAX_RESERVATIONS_PER_PAYMENT
from engine.domain.concert_room import (
    MAX_DIFFICULTY,
    MAX_NONCE,
    Abandoned,
    RoomScheduled,
    Shuffled,
)
from engine.domain.seat_map import (
    HoldExpired,
    HoldReleased,
    SeatHeld,
    SeatsLocked,
    SeatsSold,
    SeatsUnlocked,
    parse_reservation_id,
    seat_changes,
)
from engine.domain.waiting_room import (
    ActiveExpired,
    Admitted,
    Joined,
    Left,
    RoomConfigured,
    TokenCompleted,
    refusal_for,
)
from engine.domain.wallet import MAX_CHARGE
from engine.events import Event
from engine.views import (
    ActorDetail,
    ActorKind,
    ActorStats,
    ChallengeView,
    ClusterView,
    DateView,
    GatewayView,
    HoldOutcome,
    JournalStats,
    OnSale,
    Origin,
    PaymentResult,
    PaymentStatus,
    PaymentView,
    QueuePosition,
    Reservation,
    RoomFigures,
    RoomSettings,
    RoomState,
    RoomStatusView,
    Scalar,
    SeatMapView,
    SeatStatus,
    SeatView,
    ShardView,
    TokenStatus,
    TokenView,
    Totals,
)

R = TypeVar("R")


class Engine(Protocol):
    """The engine as the edges see it, whatever runs it (one process or a cluster)."""

    @property
    def ready(self) -> bool:
        """Recovered and taking commands."""
        ...

    async def ask(self, command: Command[R]) -> R:
        """Run a command; its answer once it is durable (see the module's docstring)."""
        ...

    async def add_concert(self, concert: ConcertInfo) -> ConcertInfo:
        """Put a concert (or more dates of one) on sale, durably; the concert as now on sale.
        Refused (DATE_ON_SALE) if it would change the seats or price of a date on sale."""
        ...

    def now(self) -> float:
        """The engine's clock (Unix seconds)."""
        ...

    def token(self, token: str) -> TokenView | None:
        """The view of a genuine queue token; None for anything forged or malformed."""
        ...

    def position(self, seq: int, concert_id: str | None = None) -> QueuePosition | None:
        """Rank and ETA of the waiting token numbered `seq` of the site-wide room, or of
        `concert_id`'s own room; None unless it waits."""
        ...

    @property
    def room_concerts(self) -> Container[str]:
        """The concerts with their own on-sale and room (the others: the site-wide room)."""
        ...

    def room_status(self, concert_id: str | None) -> RoomStatusView | None:
        """What anyone may know of a concert's room, or of the site-wide room (None); None
        for a room that is not here."""
        ...

    def rooms(self) -> tuple[RoomFigures, ...]:
        """Every room (the site-wide one first) with its figures."""
        ...

    def concerts(self) -> tuple[ConcertInfo, ...]: ...

    def concert(self, concert_id: str) -> ConcertInfo | None: ...

    def dates(self, concert_id: str) -> tuple[DateView, ...]:
        """Every date of the concert with its free seats, in date order."""
        ...

    def has_date(self, concert_id: str, date: str) -> bool: ...

    def seat_map(self, concert_id: str, date: str) -> SeatMapView | None: ...

    def balance(self, user_id: str) -> int: ...

    def reservations(self, user_id: str) -> tuple[Reservation, ...]:
        """The user's holds and purchases, by concert, date and seat."""
        ...

    def payment(self, user_id: str, key: str) -> PaymentView | None:
        """The payment made with this Idempotency-Key (started or completed), if any."""
        ...

    def actor_stats(self) -> tuple[ActorStats, ...]: ...

    def actor_detail(self, key: str) -> ActorDetail | None: ...

    def journal_stats(self) -> JournalStats: ...

    def totals(self, stats: Sequence[ActorStats] | None = None) -> Totals: ...

    def subscribe(self, listener: EventListener) -> None:
        """Call `listener(origin, events)` after each durable commit of any actor."""
        ...

    async def cluster(self) -> ClusterView | None:
        """The shards and gateways of a cluster; None for the embedded engine."""
        ...


__all__ = [
    "CONCERT_ID",
    "MAX_CHARGE",
    "MAX_DIFFICULTY",
    "MAX_NONCE",
    "MAX_RESERVATIONS_PER_PAYMENT",
    "MAX_SEATS",
    "Abandoned",
    "ActiveExpired",
    "ActorDetail",
    "ActorKind",
    "ActorStats",
    "Admitted",
    "Challenge",
    "ChallengeView",
    "Charge",
    "ClusterView",
    "Command",
    "ConcertDateInfo",
    "ConcertInfo",
    "Configure",
    "DateView",
    "Engine",
    "Event",
    "EventListener",
    "GatewayView",
    "Hold",
    "HoldExpired",
    "HoldOutcome",
    "HoldReleased",
    "Join",
    "Joined",
    "JournalStats",
    "Leave",
    "Left",
    "OnSale",
    "Origin",
    "Pay",
    "PaymentResult",
    "PaymentStatus",
    "PaymentView",
    "QueuePosition",
    "Release",
    "Reschedule",
    "Reservation",
    "RoomConfigured",
    "RoomFigures",
    "RoomScheduled",
    "RoomSettings",
    "RoomState",
    "RoomStatusView",
    "Scalar",
    "SeatHeld",
    "SeatMapView",
    "SeatStatus",
    "SeatView",
    "SeatsLocked",
    "SeatsSold",
    "SeatsUnlocked",
    "Seen",
    "ShardView",
    "Shuffled",
    "TokenCompleted",
    "TokenStatus",
    "TokenView",
    "Totals",
    "parse_reservation_id",
    "refusal_for",
    "seat_changes",
]
