"""The read model of one seat a user holds or bought, as the API shows it."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.seat_map import Seat, SeatMap


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    user_id: str
    concert_id: str
    date: str
    seat: int
    status: str
    price: int
    expires_at: float | None
    payment_id: str | None


def reservation_of(seat_map: SeatMap, seat: Seat) -> Reservation:
    return Reservation(
        reservation_id=seat.reservation_id or "",
        user_id=seat.user_id or "",
        concert_id=seat_map.concert_id,
        date=seat_map.date,
        seat=seat.number,
        status=seat.status,
        price=seat_map.price,
        expires_at=seat.until,
        payment_id=seat.payment_id,
    )
