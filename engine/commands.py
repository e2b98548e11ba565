"""Every command the engine takes, as a plain value that names the type of its answer.

`Command[R]` is answered with an `R` by `Engine.ask` (engine/face.py). A command is a frozen
dataclass of primitives and tuples: no actor reference or callback, so it can be sent to
another process unchanged. Each says which kind of actor takes it (`target`) and, through its
fields, which one: a date command names its concert and date, a wallet or checkout command
its user (users are spread over shards by a stable hash), a room command names its concert
(`concert_id`): a concert with its own on-sale has its own room (`room:<concertId>`), every
other concert, and `None`, the site-wide waiting room. The engine routes it there; the
actor's `decide` or `handle` runs it as a turn.

Some commands are the engine's own steps (the checkout locking seats, debiting a wallet,
completing a token): they travel the same way, which is what lets a payment span processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from engine.domain.seat_map import Locked, parse_reservation_id
from engine.domain.waiting_room import PROCESSING
from engine.views import (
    ActorKind,
    ChallengeView,
    HoldOutcome,
    OnSale,
    PaymentResult,
    PaymentStatus,
    Reservation,
    RoomSettings,
    Scalar,
    TokenStatus,
    TokenView,
)

R = TypeVar("R", covariant=True)


class Command(Generic[R]):
    """A command answered with an `R`."""

    __slots__ = ()
    target: ClassVar[ActorKind]


# -- the waiting room ------------------------------------------------------------------------


class RoomCommand(Command[R]):
    """A command for a waiting room: the room of `concert_id` if that concert has its own
    on-sale, else the site-wide room."""

    __slots__ = ()
    target: ClassVar[ActorKind] = "waiting-room"
    concert_id: str | None


@dataclass(frozen=True, slots=True)
class Join(RoomCommand[TokenView]):
    """Join the queue: a new token, or the user's current one while PRE_QUEUE, WAITING or
    PROCESSING. A room that asks for a proof of work needs `challenge` and `nonce`."""

    user_id: str
    concert_id: str | None = None
    challenge: str | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Configure(RoomCommand[RoomSettings]):
    """Change the admission settings live; absent settings are kept."""

    changes: tuple[tuple[str, Scalar], ...]
    concert_id: str | None = None

    @classmethod
    def of(cls, concert_id: str | None = None, /, **changes: Scalar) -> Configure:
        return cls(tuple(sorted(changes.items())), concert_id)


@dataclass(frozen=True, slots=True)
class Reschedule(RoomCommand[OnSale]):
    """Change a concert's on-sale live (`OnSale`'s fields; absent ones are kept). Its start
    can no longer move once it has started."""

    changes: tuple[tuple[str, Scalar], ...]
    concert_id: str | None = None

    @classmethod
    def of(cls, concert_id: str, /, **changes: Scalar) -> Reschedule:
        return cls(tuple(sorted(changes.items())), concert_id)


@dataclass(frozen=True, slots=True)
class OpenRoom(RoomCommand[None]):
    """Sent once at start: give a new room its token secret (and its on-sale)."""

    concert_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompleteToken(RoomCommand[None]):
    """The user paid for seats of `concert_id`: their current token of that concert's room
    becomes COMPLETED (a checkout's step)."""

    user_id: str
    concert_id: str | None = None


@dataclass(frozen=True, slots=True)
class Leave(RoomCommand[TokenView]):
    """The buyer leaves the queue: the token numbered `seq` becomes LEFT."""

    seq: int
    concert_id: str | None = None


@dataclass(frozen=True, slots=True)
class Seen(RoomCommand[None]):
    """These waiting tokens' pages are open (polled or connected): told, in batches, and
    never journaled (see `engine.domain.concert_room`)."""

    seqs: tuple[int, ...]
    concert_id: str | None = None


@dataclass(frozen=True, slots=True)
class Challenge(RoomCommand[ChallengeView]):
    """A proof-of-work challenge for a join of this room (nothing is recorded: it is
    signed, and recorded as used by the join that carries it)."""

    concert_id: str | None = None


# -- the seats of a date ---------------------------------------------------------------------


class DateCommand(Command[R]):
    __slots__ = ()
    target: ClassVar[ActorKind] = "date"

    def where(self) -> tuple[str, str] | None:
        """The concert and date whose actor takes this command; None if it names none."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Hold(DateCommand[HoldOutcome]):
    user_id: str
    concert_id: str
    date: str
    seat: int

    def where(self) -> tuple[str, str]:
        return self.concert_id, self.date


@dataclass(frozen=True, slots=True)
class Release(DateCommand[None]):
    user_id: str
    reservation_id: str

    def where(self) -> tuple[str, str] | None:
        parsed = parse_reservation_id(self.reservation_id)
        return (parsed[0], parsed[1]) if parsed is not None else None


@dataclass(frozen=True, slots=True)
class Lock(DateCommand[Locked]):
    """Lock a user's holds on one date for a payment (a checkout's step)."""

    user_id: str
    concert_id: str
    date: str
    reservation_ids: tuple[str, ...]
    payment_id: str

    def where(self) -> tuple[str, str]:
        return self.concert_id, self.date


@dataclass(frozen=True, slots=True)
class Unlock(DateCommand[None]):
    """Put a payment's locked seats back on hold (no money moved)."""

    concert_id: str
    date: str
    payment_id: str

    def where(self) -> tuple[str, str]:
        return self.concert_id, self.date


@dataclass(frozen=True, slots=True)
class Sell(DateCommand[tuple[Reservation, ...]]):
    """Mark a paid payment's locked seats SOLD."""

    concert_id: str
    date: str
    payment_id: str

    def where(self) -> tuple[str, str]:
        return self.concert_id, self.date


@dataclass(frozen=True, slots=True)
class SoldTo(DateCommand[tuple[Reservation, ...]]):
    """The seats a payment bought on one date (a read that waits for durability)."""

    concert_id: str
    date: str
    payment_id: str

    def where(self) -> tuple[str, str]:
        return self.concert_id, self.date


# -- wallets ---------------------------------------------------------------------------------


class WalletCommand(Command[R]):
    __slots__ = ()
    target: ClassVar[ActorKind] = "wallet"
    user_id: str


@dataclass(frozen=True, slots=True)
class Charge(WalletCommand[int]):
    """Add to a balance; answers the balance. Idempotent by `key`: a retry is answered from
    the charge's record whatever the token's status now; a new charge needs PROCESSING."""

    user_id: str
    amount: int
    key: str | None = None
    token_status: TokenStatus = PROCESSING


@dataclass(frozen=True, slots=True)
class Debit(WalletCommand[int]):
    """Take a payment's amount (a checkout's step; idempotent by payment); answers the
    balance."""

    user_id: str
    amount: int
    payment_id: str


@dataclass(frozen=True, slots=True)
class DebitFound:
    amount: int
    balance: int  # the user's balance now


@dataclass(frozen=True, slots=True)
class FindDebit(WalletCommand[DebitFound | None]):
    """The amount debited for a payment, or None: answered once everything the wallet holds
    is durable, so a debit that may yet fail to commit is never reported as taken."""

    user_id: str
    payment_id: str


# -- checkouts -------------------------------------------------------------------------------


class CheckoutCommand(Command[R]):
    __slots__ = ()
    target: ClassVar[ActorKind] = "checkout"
    user_id: str


@dataclass(frozen=True, slots=True)
class Pay(CheckoutCommand[PaymentResult]):
    """Pay held seats from the balance. A new payment needs a PROCESSING token; a retry with
    the key of an earlier payment is answered with that payment's outcome whatever the
    token's status now."""

    user_id: str
    reservation_ids: tuple[str, ...]
    key: str | None = None
    token_status: TokenStatus = PROCESSING


@dataclass(frozen=True, slots=True)
class PaymentStatusOf(CheckoutCommand[PaymentStatus | None]):
    """The status of a payment, None if its checkout never recorded it (a read answered once
    what the checkout holds is durable)."""

    user_id: str
    payment_id: str


@dataclass(frozen=True, slots=True)
class Resolve(CheckoutCommand[PaymentStatus]):
    """Finish or cancel a payment left STARTED, from what the wallet recorded durably."""

    user_id: str
    payment_id: str


__all__ = [
    "Challenge",
    "Charge",
    "CheckoutCommand",
    "Command",
    "CompleteToken",
    "Configure",
    "DateCommand",
    "Debit",
    "DebitFound",
    "FindDebit",
    "Hold",
    "Join",
    "Leave",
    "Lock",
    "Locked",
    "OpenRoom",
    "Pay",
    "PaymentStatusOf",
    "Release",
    "Reschedule",
    "Resolve",
    "RoomCommand",
    "Seen",
    "Sell",
    "SoldTo",
    "Unlock",
    "WalletCommand",
]
