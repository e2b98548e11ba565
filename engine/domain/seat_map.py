"""The seats of one concert date and their rules: hold, release, expiry, checkout lock, sale.

Pure Python: every decision is a method that returns events (or raises `Refused`) without
changing anything; `apply` is the only mutator, so replaying the journal rebuilds the same map.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from engine.errors import (
    HOLD_EXPIRED,
    HOLD_LIMIT,
    NOT_FOUND,
    NOT_OWNER,
    SEAT_TAKEN,
    Refused,
)
from engine.events import Event, register
from engine.snapshots import SnapshotFormat, columns, rows
from engine.views import Scalar, SeatStatus

AVAILABLE: Final = "AVAILABLE"
HELD: Final = "HELD"
CHECKOUT: Final = "CHECKOUT"
SOLD: Final = "SOLD"

# How a hold ended (remembered per reservation id).
RELEASED = "RELEASED"
EXPIRED = "EXPIRED"

# Ended holds remembered per date, so a late payment learns HOLD_EXPIRED rather than NOT_FOUND.
ENDED_HOLDS_KEPT = 10_000


@register
@dataclass(frozen=True, slots=True)
class SeatHeld(Event):
    kind: ClassVar[str] = "seat.held"
    seat: int
    user_id: str
    reservation_id: str
    until: float


@register
@dataclass(frozen=True, slots=True)
class HoldReleased(Event):
    kind: ClassVar[str] = "seat.released"
    seat: int
    reservation_id: str
    user_id: str


@register
@dataclass(frozen=True, slots=True)
class HoldExpired(Event):
    kind: ClassVar[str] = "seat.expired"
    seat: int
    reservation_id: str
    user_id: str


@register
@dataclass(frozen=True, slots=True)
class SeatsLocked(Event):
    kind: ClassVar[str] = "seats.locked"
    payment_id: str
    user_id: str
    seats: tuple[int, ...]


@register
@dataclass(frozen=True, slots=True)
class SeatsUnlocked(Event):
    kind: ClassVar[str] = "seats.unlocked"
    payment_id: str
    seats: tuple[int, ...]


@register
@dataclass(frozen=True, slots=True)
class SeatsSold(Event):
    kind: ClassVar[str] = "seats.sold"
    payment_id: str
    seats: tuple[int, ...]


@dataclass(slots=True)
class Seat:
    number: int
    status: SeatStatus = AVAILABLE
    user_id: str | None = None
    reservation_id: str | None = None
    until: float | None = None
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Locked:
    """The outcome of a checkout lock: which seats, and what they cost."""

    seats: tuple[int, ...]
    reservation_ids: tuple[str, ...]
    amount: int


# Version 1: {"version": 1, "holds_made": int, "seats": table of every seat not AVAILABLE,
# "ended": table of the ended holds remembered, oldest first}.
_SEAT_COLUMNS = ("number", "status", "user_id", "reservation_id", "until", "payment_id")
_ENDED_COLUMNS = ("reservation_id", "user_id", "how")


def _upgrade_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 wrote each seat and each ended hold as a positional row, its values in the
    order named here (that order is history: it stays whatever the current columns become)."""
    return {
        "holds_made": data["holds_made"],
        "seats": columns(
            data["seats"], ("number", "status", "user_id", "reservation_id", "until", "payment_id")
        ),
        "ended": columns(data["ended"], ("reservation_id", "user_id", "how")),
    }


SNAPSHOT = SnapshotFormat("seat map", 1, {0: _upgrade_v0})


class SeatMap:
    def __init__(
        self,
        concert_id: str,
        date: str,
        seat_count: int,
        price: int,
        *,
        hold_seconds: float,
        max_holds_per_user: int,
    ) -> None:
        self.concert_id = concert_id
        self.date = date
        self.price = price
        self.hold_seconds = hold_seconds
        self.max_holds_per_user = max_holds_per_user
        self.seats = [Seat(number) for number in range(1, seat_count + 1)]
        self.holds_made = 0
        self.ended: OrderedDict[str, tuple[str, str]] = OrderedDict()  # rid -> (user, how)
        self.by_user: dict[str, set[int]] = {}  # seats a user holds, pays for or bought
        self._deadline: float | None = None
        self._deadline_stale = False

    # -- reads -------------------------------------------------------------------------------

    @property
    def seat_count(self) -> int:
        return len(self.seats)

    def seat(self, number: int) -> Seat:
        if not 1 <= number <= len(self.seats):
            # A well-formed request for a seat this date does not have, as for a date that is
            # not on sale: the number is valid, the seat is not there.
            raise Refused(
                NOT_FOUND, f"no seat {number}: seats are 1 to {len(self.seats)}", field="seat"
            )
        return self.seats[number - 1]

    def available(self) -> list[int]:
        return [s.number for s in self.seats if s.status == AVAILABLE]

    def holds_of(self, user_id: str) -> list[Seat]:
        return [s for s in self.seats_of(user_id) if s.status in (HELD, CHECKOUT)]

    def seats_of(self, user_id: str) -> list[Seat]:
        return [self.seats[n - 1] for n in sorted(self.by_user.get(user_id, ()))]

    def find(self, reservation_id: str) -> Seat | None:
        number = reservation_seat(reservation_id)
        if number is None or not 1 <= number <= len(self.seats):
            return None
        seat = self.seats[number - 1]
        return seat if seat.reservation_id == reservation_id else None

    def next_deadline(self) -> float | None:
        if self._deadline_stale:
            untils = [s.until for s in self.seats if s.status == HELD and s.until is not None]
            self._deadline = min(untils) if untils else None
            self._deadline_stale = False
        return self._deadline

    # -- decisions (no mutation) ---------------------------------------------------------------

    def hold(self, user_id: str, number: int, now: float) -> list[Event]:
        seat = self.seat(number)
        events: list[Event] = []
        if seat.status == HELD and seat.until is not None and seat.until <= now:
            # Lapsed but not yet expired by the timer: expire it in this turn and go on.
            events.append(self._expiry(seat))
        elif seat.status == HELD and seat.user_id == user_id:
            return []  # already this user's hold: a double click is not an error
        elif seat.status != AVAILABLE:
            raise Refused(SEAT_TAKEN, f"seat {number} is already taken")
        live = [
            s
            for s in self.holds_of(user_id)
            if s.number != number and (s.status == CHECKOUT or (s.until or 0) > now)
        ]
        if len(live) >= self.max_holds_per_user:
            raise Refused(
                HOLD_LIMIT,
                f"at most {self.max_holds_per_user} seats can be held per date",
            )
        reservation_id = make_reservation_id(
            self.concert_id, self.date, number, self.holds_made + 1
        )
        events.append(SeatHeld(number, user_id, reservation_id, now + self.hold_seconds))
        return events

    def release(self, user_id: str, reservation_id: str, now: float) -> list[Event]:
        seat = self._owned_hold(user_id, reservation_id, now)
        if seat.status != HELD:
            raise Refused(SEAT_TAKEN, "this reservation is being paid and cannot be released")
        return [HoldReleased(seat.number, reservation_id, user_id)]

    def expire_due(self, now: float) -> list[Event]:
        return [
            self._expiry(s)
            for s in self.seats
            if s.status == HELD and s.until is not None and s.until <= now
        ]

    def lock(
        self, user_id: str, reservation_ids: tuple[str, ...], payment_id: str, now: float
    ) -> tuple[list[Event], Locked]:
        seats = []
        for rid in reservation_ids:
            seat = self._owned_hold(user_id, rid, now)
            if seat.status != HELD:
                raise Refused(SEAT_TAKEN, f"reservation {rid} is already being paid")
            seats.append(seat.number)
        numbers = tuple(seats)
        locked = Locked(numbers, reservation_ids, self.price * len(numbers))
        return [SeatsLocked(payment_id, user_id, numbers)], locked

    def unlock(self, payment_id: str, now: float) -> list[Event]:
        seats = self._in_checkout(payment_id)
        if not seats:
            return []
        events: list[Event] = [SeatsUnlocked(payment_id, tuple(s.number for s in seats))]
        events += [
            HoldExpired(s.number, s.reservation_id or "", s.user_id or "")
            for s in seats
            if s.until is not None and s.until <= now
        ]
        return events

    def sell(self, payment_id: str) -> list[Event]:
        seats = self._in_checkout(payment_id)
        return [SeatsSold(payment_id, tuple(s.number for s in seats))] if seats else []

    def payments_in_checkout(self) -> dict[str, str]:
        """Payment id -> user of every seat locked for a checkout (for crash resolution)."""
        return {
            s.payment_id: s.user_id or ""
            for s in self.seats
            if s.status == CHECKOUT and s.payment_id is not None
        }

    def _in_checkout(self, payment_id: str) -> list[Seat]:
        return [s for s in self.seats if s.status == CHECKOUT and s.payment_id == payment_id]

    def _owned_hold(self, user_id: str, reservation_id: str, now: float) -> Seat:
        seat = self.find(reservation_id)
        if seat is None or seat.status == SOLD:
            ended = self.ended.get(reservation_id)
            if ended is not None and ended[0] != user_id:
                raise Refused(NOT_OWNER, "this reservation belongs to someone else")
            if ended is not None and ended[1] == EXPIRED:
                raise Refused(HOLD_EXPIRED, "the hold expired; hold the seat again")
            raise Refused(NOT_FOUND, f"no active reservation {reservation_id}")
        if seat.user_id != user_id:
            raise Refused(NOT_OWNER, "this reservation belongs to someone else")
        if seat.status == HELD and seat.until is not None and seat.until <= now:
            raise Refused(HOLD_EXPIRED, "the hold expired; hold the seat again")
        return seat

    @staticmethod
    def _expiry(seat: Seat) -> HoldExpired:
        return HoldExpired(seat.number, seat.reservation_id or "", seat.user_id or "")

    # -- the only mutator --------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        match event:
            case SeatHeld(seat=n, user_id=user, reservation_id=rid, until=until):
                seat = self.seats[n - 1]
                seat.status, seat.user_id, seat.reservation_id = HELD, user, rid
                seat.until, seat.payment_id = until, None
                self.by_user.setdefault(user, set()).add(n)
                self.holds_made += 1
                if self._deadline is None or until < self._deadline:
                    self._deadline = until
            case HoldReleased(seat=n, reservation_id=rid, user_id=user):
                self._end(self.seats[n - 1], rid, user, RELEASED)
            case HoldExpired(seat=n, reservation_id=rid, user_id=user):
                self._end(self.seats[n - 1], rid, user, EXPIRED)
            case SeatsLocked(payment_id=pid, seats=numbers):
                for n in numbers:
                    self.seats[n - 1].status = CHECKOUT
                    self.seats[n - 1].payment_id = pid
                self._deadline_stale = True
            case SeatsUnlocked(seats=numbers):
                for n in numbers:
                    self.seats[n - 1].status = HELD
                    self.seats[n - 1].payment_id = None
                self._deadline_stale = True
            case SeatsSold(seats=numbers):
                for n in numbers:
                    self.seats[n - 1].status = SOLD
                    self.seats[n - 1].until = None
            case _:
                raise TypeError(f"a seat map cannot apply {event!r}")

    def _end(self, seat: Seat, reservation_id: str, user_id: str, how: str) -> None:
        mine = self.by_user.get(user_id)
        if mine is not None:
            mine.discard(seat.number)
            if not mine:
                del self.by_user[user_id]
        seat.status, seat.user_id, seat.reservation_id = AVAILABLE, None, None
        seat.until, seat.payment_id = None, None
        self.ended[reservation_id] = (user_id, how)
        if len(self.ended) > ENDED_HOLDS_KEPT:
            self.ended.popitem(last=False)
        self._deadline_stale = True

    # -- snapshots and stats -----------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        return SNAPSHOT.write(
            holds_made=self.holds_made,
            seats=columns(
                (
                    (s.number, s.status, s.user_id, s.reservation_id, s.until, s.payment_id)
                    for s in self.seats
                    if s.status != AVAILABLE
                ),
                _SEAT_COLUMNS,
            ),
            ended=columns(
                ((rid, user, how) for rid, (user, how) in self.ended.items()), _ENDED_COLUMNS
            ),
        )

    def load_snapshot(self, data: dict[str, Any]) -> None:
        """Take the state of a snapshot of any version `SNAPSHOT` reads (raises
        `SnapshotRefused` for others)."""
        data = SNAPSHOT.read(data)
        self.holds_made = data["holds_made"]
        for number, status, user, rid, until, pid in rows(data["seats"], _SEAT_COLUMNS):
            self.seats[number - 1] = Seat(number, status, user, rid, until, pid)
            self.by_user.setdefault(user, set()).add(number)
        self.ended = OrderedDict(
            (rid, (user, how)) for rid, user, how in rows(data["ended"], _ENDED_COLUMNS)
        )
        self._deadline_stale = True

    def summary(self) -> dict[str, Scalar]:
        statuses = [s.status for s in self.seats]
        return {
            "concertId": self.concert_id,
            "date": self.date,
            "price": self.price,
            "seats": self.seat_count,
            "available": statuses.count(AVAILABLE),
            "held": statuses.count(HELD),
            "checkout": statuses.count(CHECKOUT),
            "sold": statuses.count(SOLD),
        }


_STATUS_AFTER: dict[type[Event], SeatStatus] = {
    SeatHeld: HELD,
    HoldReleased: AVAILABLE,
    HoldExpired: AVAILABLE,
    SeatsLocked: CHECKOUT,
    SeatsUnlocked: HELD,
    SeatsSold: SOLD,
}


def seat_changes(event: Event) -> tuple[tuple[int, ...], SeatStatus]:
    """The seats a seat map's event changes, and the status it leaves them in."""
    status = _STATUS_AFTER[type(event)]
    if isinstance(event, SeatsLocked | SeatsUnlocked | SeatsSold):
        return event.seats, status
    assert isinstance(event, SeatHeld | HoldReleased | HoldExpired)
    return (event.seat,), status


def make_reservation_id(concert_id: str, date: str, seat: int, hold_no: int) -> str:
    return f"{concert_id}.{date}.{seat}.{hold_no}"


def parse_reservation_id(reservation_id: str) -> tuple[str, str, int] | None:
    """(concert id, date, seat) named by a reservation id, or None if it is not one."""
    parts = reservation_id.split(".")
    if len(parts) != 4 or not _is_number(parts[2]) or not _is_number(parts[3]):
        return None
    return parts[0], parts[1], int(parts[2])


def _is_number(text: str) -> bool:
    # ASCII digits only: `"²".isdigit()` is true, yet `int("²")` raises.
    return text.isascii() and text.isdigit() and len(text) <= 18


def reservation_seat(reservation_id: str) -> int | None:
    parsed = parse_reservation_id(reservation_id)
    return parsed[2] if parsed else None
