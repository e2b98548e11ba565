"""What the engine answers: the outcomes of commands and the read views, as plain values.

Every type here is a frozen dataclass of primitives, tuples, enums and other such values:
nothing refers to an actor or a callback, so a view or an outcome can cross a process
boundary unchanged (the cluster's gateways receive them from shard hosts). The domain builds
them from its state (`engine.domain`); the web layer turns them into JSON. This module imports
nothing of the engine's: the domain depends on it, not the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Scalar = int | float | str | bool | None

# Statuses and kinds are plain strings typed as literals: no runtime cost on the hot path (an
# enum member is compared and hashed the slow way), checked by mypy everywhere.
# PRE_QUEUE: in an on-sale's room before it starts (no rank yet); LEFT: the buyer left.
TokenStatus = Literal["PRE_QUEUE", "WAITING", "PROCESSING", "COMPLETED", "EXPIRED", "LEFT"]
SeatStatus = Literal["AVAILABLE", "HELD", "CHECKOUT", "SOLD"]  # CHECKOUT: a payment runs
PaymentStatus = Literal["STARTED", "COMPLETED", "FAILED"]
ActorKind = Literal["waiting-room", "room", "date", "wallet", "checkout"]
# The state of a waiting room as `GET /api/queue/status` tells it.
RoomState = Literal["not_open", "pre_queue", "open", "paused"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Which actor committed a batch of events (handed to event listeners with them)."""

    kind: ActorKind
    key: str
    concert_id: str | None = None  # dates and on-sale rooms
    date: str | None = None  # dates only


@dataclass(frozen=True, slots=True)
class TokenView:
    """A queue token as the token gate and its owner see it."""

    token: str
    seq: int  # the token's number in the queue: who it is, for the websocket hub's index
    user_id: str
    status: TokenStatus
    rank: int | None  # 1-based while WAITING
    eta_seconds: float | None  # while WAITING; None while admission is paused
    active_until: float | None  # while PROCESSING
    new: bool = False  # set only in the reply to the join that issued this token
    concert_id: str | None = None  # the concert whose own room issued it; None: site-wide
    starts_at: float | None = None  # the on-sale's start, for a token of a concert's room
    reason: str | None = None  # why it is EXPIRED when not its active window: "abandoned"

    def status_at(self, now: float) -> TokenStatus:
        """The status at `now`: EXPIRED once the active window has run out, even before the
        waiting room's timer turn has expired it (a request in that gap is too late)."""
        until = self.active_until
        if self.status == "PROCESSING" and until is not None and until <= now:
            return "EXPIRED"
        return self.status


@dataclass(frozen=True, slots=True)
class RoomSettings:
    batch_size: int
    interval_seconds: float
    max_active: int | None
    active_ttl_seconds: float
    paused: bool = False


@dataclass(frozen=True, slots=True)
class OnSale:
    """A concert's own on-sale: its room opens `pre_queue_seconds` before `starts_at`, the
    buyers who came by then are shuffled at `starts_at`, and admission runs on these
    settings. `proof_of_work` is the leading zero bits a join's challenge needs (0: none)."""

    starts_at: float
    pre_queue_seconds: float
    batch_size: int
    interval_seconds: float
    max_active: int | None
    active_ttl_seconds: float
    proof_of_work: int = 0
    paused: bool = False

    @property
    def opens_at(self) -> float:
        return self.starts_at - self.pre_queue_seconds

    def admission(self) -> RoomSettings:
        return RoomSettings(
            self.batch_size,
            self.interval_seconds,
            self.max_active,
            self.active_ttl_seconds,
            self.paused,
        )


@dataclass(frozen=True, slots=True)
class RoomStatusView:
    """`GET /api/queue/status`: what anyone may know of a room, without a token."""

    concert_id: str | None
    state: RoomState
    waiting: int
    pre_queued: int
    starts_at: float | None
    estimated_wait_seconds: float | None  # for one who joins now; None while paused


@dataclass(frozen=True, slots=True)
class ChallengeView:
    """A proof-of-work challenge: a join must carry it with a nonce such that SHA-256 of
    `challenge + ":" + nonce` has `difficulty` leading zero bits, before `expires_at`."""

    challenge: str
    difficulty: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class RoomFigures:
    """One room's figures for the operator (`GET /admin/rooms`, /metrics, the dashboard)."""

    concert_id: str | None  # None: the site-wide room
    state: RoomState
    on_sale: OnSale | None  # the settings of a concert's room; None for the site-wide one
    settings: RoomSettings
    waiting: int
    pre_queued: int
    active: int
    admitted: int
    admitted_per_minute: float  # over the last minute
    waited_p50_seconds: float | None  # from joining (or the start) until admission
    waited_p90_seconds: float | None
    left: int
    abandoned: int
    dropped_waited_p50_seconds: float | None  # how long those who left or were abandoned waited
    completed: int  # admitted buyers who paid
    conversion: float | None  # completed / admitted


@dataclass(frozen=True, slots=True)
class Reservation:
    """One seat a user holds, is paying for, or bought."""

    reservation_id: str
    user_id: str
    concert_id: str
    date: str
    seat: int
    status: SeatStatus
    price: int
    expires_at: float | None
    payment_id: str | None


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    reservation: Reservation
    created: bool  # False: the caller already held this seat, and this is that hold


@dataclass(frozen=True, slots=True)
class SeatView:
    number: int
    status: SeatStatus
    holder: str | None
    reservation_id: str | None
    expires_at: float | None
    payment_id: str | None


@dataclass(frozen=True, slots=True)
class SeatMapView:
    concert_id: str
    date: str
    price: int
    seats: tuple[SeatView, ...]

    @property
    def available(self) -> tuple[int, ...]:
        return tuple(s.number for s in self.seats if s.status == "AVAILABLE")


@dataclass(frozen=True, slots=True)
class DateView:
    """A date of a concert with how many of its seats are free."""

    date: str
    available_seats: int
    total_seats: int
    price: int


@dataclass(frozen=True, slots=True)
class PaymentView:
    payment_id: str
    user_id: str
    status: PaymentStatus
    amount: int
    balance: int
    reservation_ids: tuple[str, ...]
    failure: str | None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The answer to a payment: what was paid and the seats it bought."""

    payment_id: str
    user_id: str
    amount: int
    balance: int
    reservations: tuple[Reservation, ...]


@dataclass(frozen=True, slots=True)
class QueuePosition:
    rank: int
    eta_seconds: float | None  # None while admission is paused


@dataclass(frozen=True, slots=True)
class ActorStats:
    key: str
    kind: ActorKind
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    errors: int
    overloaded: int
    rebuilds: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    state: Mapping[str, Scalar] = field(default_factory=dict)  # the state's summary
    host: str | None = None  # the process that runs it, in a cluster


@dataclass(frozen=True, slots=True)
class ActorDetail:
    """One actor's stats and its whole state, as the admin API shows it (one of the parts,
    by the actor's kind)."""

    stats: ActorStats
    seats: SeatMapView | None = None
    balances: tuple[tuple[str, int], ...] | None = None
    payments: tuple[PaymentView, ...] | None = None
    settings: RoomSettings | None = None


@dataclass(frozen=True, slots=True)
class JournalStats:
    healthy: bool
    last_error: str | None
    commits: int
    events: int
    snapshots: int
    failures: int


@dataclass(frozen=True, slots=True)
class ShardView:
    """One shard of a cluster: its host and how it fares."""

    shard: int
    host: str | None  # shard-<n>@<node>:<pid>
    epoch: int  # of its journal lease: bumped by every (re)start
    restarts: int  # seen by this gateway since it started
    started_at: float | None
    recovery_seconds: float | None
    actors: int
    healthy: bool
    fenced: bool
    reachable: bool
    error: str | None
    calls: int  # batched calls this gateway made to it
    commands: int  # commands those calls carried


@dataclass(frozen=True, slots=True)
class GatewayView:
    index: int
    node: str
    pid: int
    port: int  # its own port, beside the shared one
    started_at: float
    websockets: int


@dataclass(frozen=True, slots=True)
class ClusterView:
    shards: tuple[ShardView, ...]
    gateways: tuple[GatewayView, ...]


@dataclass(frozen=True, slots=True)
class Totals:
    """Figures over every actor: the queue, the seats and the money."""

    waiting: int
    active: int
    admitted: int
    completed: int
    expired: int
    seats: int
    available: int
    held: int
    checkout: int
    sold: int
    charged: int
    debited: int
    balances: int  # the sum of every balance: charged - debited
    payments_completed: int
    payments_failed: int
    payments_started: int
    revenue: int


__all__ = [
    "ActorDetail",
    "ActorKind",
    "ActorStats",
    "ChallengeView",
    "ClusterView",
    "DateView",
    "GatewayView",
    "HoldOutcome",
    "JournalStats",
    "OnSale",
    "Origin",
    "PaymentResult",
    "PaymentStatus",
    "PaymentView",
    "QueuePosition",
    "Reservation",
    "RoomFigures",
    "RoomSettings",
    "RoomState",
    "RoomStatusView",
    "Scalar",
    "SeatMapView",
    "SeatStatus",
    "SeatView",
    "ShardView",
    "TokenStatus",
    "TokenView",
    "Totals",
]
