"""The read views of a seat map: one seat a user holds or bought, and the whole map."""

from __future__ import annotations

from engine.domain.seat_map import Seat, SeatMap
from engine.views import Reservation, SeatMapView, SeatView


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


def seat_map_view(seat_map: SeatMap) -> SeatMapView:
    return SeatMapView(
        concert_id=seat_map.concert_id,
        date=seat_map.date,
        price=seat_map.price,
        seats=tuple(
            SeatView(s.number, s.status, s.user_id, s.reservation_id, s.until, s.payment_id)
            for s in seat_map.seats
        ),
    )
