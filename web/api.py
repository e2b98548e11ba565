"""The public HTTP API (`/api/...`): queue tokens, catalog, seats, holds, balance, payments.

Reads (token gate, dates, seats, balance, a user's reservations) come from the actors'
published views; only state changes go through a mailbox.
"""

from __future__ import annotations

import re
from datetime import date as calendar_date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.catalog import CONCERT_ID
from engine.domain.reservation import Reservation
from engine.domain.seat_map import AVAILABLE, HELD
from engine.domain.waiting_room import TokenView
from engine.errors import (
    HOLD_EXPIRED,
    HOLD_LIMIT,
    IDEMPOTENCY_CONFLICT,
    INSUFFICIENT_BALANCE,
    NOT_FOUND,
    NOT_OWNER,
    SEAT_TAKEN,
    VALIDATION_ERROR,
)
from web import gate
from web.body import read_body
from web.endpoints import Endpoint, Out, Param, json_response
from web.errors import ApiError
from web.responses import JsonResponse
from web.runtime import Runtime
from web.schemas import (
    DATE_PATTERN,
    BalanceOut,
    ChargeRequest,
    ConcertOut,
    DateOut,
    HoldRequest,
    JoinRequest,
    PaymentOut,
    PaymentRequest,
    ReleaseOut,
    ReservationOut,
    SeatMapOut,
    SeatOut,
    TokenOut,
    instant,
)

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_DATE = re.compile(DATE_PATTERN)

IDEMPOTENCY_PARAM = Param(
    "Idempotency-Key",
    "header",
    "optional; a retry with the same key (1-255 visible ASCII characters) has the same effect "
    "and answer as the first request",
    required=False,
)
CONCERT_PARAM = Param(
    "concertId", "path", "concert id", {"type": "string", "pattern": CONCERT_ID.pattern}
)
DATE_PARAM = Param("date", "path", "yyyy-mm-dd", {"type": "string", "format": "date"})


def token_out(view: TokenView) -> TokenOut:
    return TokenOut(
        token=view.token,
        user_id=view.user_id,
        status=view.status,  # type: ignore[arg-type]
        rank=view.rank,
        eta_seconds=view.eta_seconds,
        active_until=instant(view.active_until),
    )


def reservation_fields(reservation: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": reservation.reservation_id,
        "concert_id": reservation.concert_id,
        "date": reservation.date,
        "seat": reservation.seat,
        "status": reservation.status,
        "price": reservation.price,
        "expires_at": instant(reservation.expires_at),
        "payment_id": reservation.payment_id,
    }


def reservation_out(reservation: Reservation) -> ReservationOut:
    return ReservationOut(**reservation_fields(reservation))


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            VALIDATION_ERROR,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            field="Idempotency-Key",
        )
    return key


def checked_date(value: str) -> str:
    if _DATE.match(value):
        try:
            calendar_date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise ApiError(VALIDATION_ERROR, f"date {value!r} is not a yyyy-mm-dd date", field="date")


class PublicApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- queue -------------------------------------------------------------------------------

    async def join(self, request: Request) -> Response:
        system = self.runtime.engine()
        body = await read_body(request, JoinRequest)
        view = await system.join(body.user_id)
        return json_response(token_out(view), 201 if view.new else 200)

    async def me(self, request: Request) -> Response:
        system = self.runtime.engine()
        return json_response(token_out(gate.any_token(system, request)))

    # -- catalog -----------------------------------------------------------------------------

    async def concerts(self, request: Request) -> Response:
        system = self.runtime.engine()
        gate.active_token(system, request)
        return json_response(
            [
                ConcertOut(
                    concert_id=concert.concert_id,
                    title=concert.title,
                    venue=concert.venue,
                    dates=[d.date for d in system.date_infos(concert.concert_id)],
                )
                for concert in sorted(system.concerts.values(), key=lambda c: c.concert_id)
            ]
        )

    async def dates(self, request: Request) -> Response:
        system = self.runtime.engine()
        gate.active_token(system, request)
        concert_id = request.path_params["concertId"]
        if concert_id not in system.concerts:
            raise ApiError(NOT_FOUND, f"no concert {concert_id}")
        listed = []
        for info in system.date_infos(concert_id):
            actor = system.dates.get(info.key)
            if actor is None:
                continue
            free = sum(1 for seat in actor.state.seats if seat.status == AVAILABLE)
            if free:
                listed.append(
                    DateOut(
                        date=info.date,
                        available_seats=free,
                        total_seats=actor.state.seat_count,
                        price=info.price,
                    )
                )
        return json_response(listed)

    async def seats(self, request: Request) -> Response:
        system = self.runtime.engine()
        gate.active_token(system, request)
        concert_id = request.path_params["concertId"]
        date = checked_date(request.path_params["date"])
        actor = system.date_actor(concert_id, date)
        if actor is None:
            raise ApiError(NOT_FOUND, f"no date {date} for concert {concert_id}")
        seat_map = actor.state
        price = seat_map.price
        return json_response(
            SeatMapOut(
                concert_id=concert_id,
                date=date,
                seats=[
                    SeatOut(number=s.number, status=s.status, price=price)  # type: ignore[arg-type]
                    for s in seat_map.seats
                ],
                available=seat_map.available(),
            )
        )

    # -- reservations ------------------------------------------------------------------------

    async def hold(self, request: Request) -> Response:
        system = self.runtime.engine()
        view = gate.active_token(system, request)
        body = await read_body(request, HoldRequest)
        gate.same_user(view, body.user_id)
        actor = system.date_actor(body.concert_id, body.date)
        if actor is None:
            raise ApiError(NOT_FOUND, f"no date {body.date} for concert {body.concert_id}")
        if body.seat > actor.state.seat_count:
            raise ApiError(
                VALIDATION_ERROR,
                f"seat must be between 1 and {actor.state.seat_count}",
                field="seat",
            )
        before = actor.state.seats[body.seat - 1]
        mine_already = (
            before.status == HELD
            and before.user_id == view.user_id
            and (before.until or 0) > system.clock.now()
        )
        earlier_id = before.reservation_id
        reservation = await system.hold(view.user_id, body.concert_id, body.date, body.seat)
        # A repeated hold of one's own seat answers the existing hold (200), not a new one.
        status = 200 if mine_already and reservation.reservation_id == earlier_id else 201
        return JsonResponse(ReservationOut.dump(reservation_fields(reservation)), status)

    async def reservations(self, request: Request) -> Response:
        system = self.runtime.engine()
        view = gate.active_token(system, request)
        found = sorted(
            system.reservations_of(view.user_id), key=lambda r: (r.concert_id, r.date, r.seat)
        )
        return json_response([reservation_out(r) for r in found])

    async def release(self, request: Request) -> Response:
        system = self.runtime.engine()
        view = gate.active_token(system, request)
        reservation_id = request.path_params["reservationId"]
        await system.release(view.user_id, reservation_id)
        return json_response(ReleaseOut(reservation_id=reservation_id))

    # -- money -------------------------------------------------------------------------------

    async def charge(self, request: Request) -> Response:
        system = self.runtime.engine()
        view = gate.any_token(system, request)
        body = await read_body(request, ChargeRequest)
        gate.same_user(view, body.user_id)
        # A charge retried with its key is answered from its record whatever the token's
        # status now; the wallet decides, knowing the status (a new charge needs PROCESSING).
        balance = await system.charge(
            view.user_id, body.amount, idempotency_key(request), gate.status_now(system, view)
        )
        return json_response(BalanceOut(user_id=view.user_id, balance=balance))

    async def balance(self, request: Request) -> Response:
        system = self.runtime.engine()
        view = gate.active_token(system, request)
        return json_response(BalanceOut(user_id=view.user_id, balance=system.balance(view.user_id)))

    async def pay(self, request: Request) -> Response:
        system = self.runtime.engine()
        view = gate.any_token(system, request)
        key = idempotency_key(request)
        body = await read_body(request, PaymentRequest)
        gate.same_user(view, body.user_id)
        # A payment completes the token; its retry (same Idempotency-Key, e.g. after a lost
        # answer) still gets the payment's outcome: the checkout decides, knowing the status.
        result = await system.pay(
            view.user_id, body.reservation_ids, key, gate.status_now(system, view)
        )
        return json_response(
            PaymentOut(
                payment_id=result.payment_id,
                amount=result.amount,
                reservations=[reservation_out(r) for r in result.reservations],
                balance=result.balance,
            ),
            201,
        )

    # -- the routes --------------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST", "/api/queue/tokens", self.join,
                "Join the waiting room (idempotent per user while WAITING or PROCESSING)",
                auth="none", body=JoinRequest,
                responses={
                    201: Out(TokenOut, description="a new token"),
                    200: Out(TokenOut, description="the user's current token"),
                },
                errors=(VALIDATION_ERROR,), tag="queue",
            ),
            Endpoint(
                "GET", "/api/queue/tokens/me", self.me,
                "The caller's token: status, rank (1-based while WAITING), ETA, active window",
                auth="token", responses={200: Out(TokenOut)}, tag="queue",
            ),
            Endpoint(
                "GET", "/api/concerts", self.concerts, "Concerts on sale",
                responses={200: Out(ConcertOut, many=True)}, tag="catalog",
            ),
            Endpoint(
                "GET", "/api/concerts/{concertId}/dates", self.dates,
                "Dates of a concert that still have a free seat",
                responses={200: Out(DateOut, many=True)}, errors=(NOT_FOUND,),
                params=(CONCERT_PARAM,), tag="catalog",
            ),
            Endpoint(
                "GET", "/api/concerts/{concertId}/dates/{date}/seats", self.seats,
                "The seat map of a date",
                responses={200: Out(SeatMapOut)}, errors=(NOT_FOUND, VALIDATION_ERROR),
                params=(CONCERT_PARAM, DATE_PARAM), tag="catalog",
            ),
            Endpoint(
                "POST", "/api/reservations", self.hold,
                "Hold a seat for HOLD_SECONDS (at most MAX_HOLDS_PER_USER per date)",
                body=HoldRequest,
                responses={
                    201: Out(ReservationOut, description="the seat is held"),
                    200: Out(ReservationOut, description="the caller already holds this seat"),
                },
                errors=(NOT_FOUND, VALIDATION_ERROR, SEAT_TAKEN, HOLD_LIMIT, NOT_OWNER),
                tag="reservations",
            ),
            Endpoint(
                "GET", "/api/reservations", self.reservations,
                "The caller's holds and purchases",
                responses={200: Out(ReservationOut, many=True)}, tag="reservations",
            ),
            Endpoint(
                "DELETE", "/api/reservations/{reservationId}", self.release, "Release a hold",
                responses={200: Out(ReleaseOut)},
                errors=(NOT_FOUND, NOT_OWNER, HOLD_EXPIRED, SEAT_TAKEN),
                params=(Param("reservationId", "path", "reservation id"),), tag="reservations",
            ),
            Endpoint(
                "POST", "/api/balance/charge", self.charge,
                "Add money to the caller's balance (idempotent with Idempotency-Key, whose "
                "retry is answered from its record whatever the token's status now)",
                body=ChargeRequest, responses={200: Out(BalanceOut)},
                errors=(VALIDATION_ERROR, NOT_OWNER, IDEMPOTENCY_CONFLICT),
                params=(IDEMPOTENCY_PARAM,), tag="money",
            ),
            Endpoint(
                "GET", "/api/balance", self.balance, "The caller's balance",
                responses={200: Out(BalanceOut)}, tag="money",
            ),
            Endpoint(
                "POST", "/api/payments", self.pay,
                "Pay held seats from the balance; completes the token (idempotent with "
                "Idempotency-Key, whose retry is answered even once the token is COMPLETED)",
                body=PaymentRequest, responses={201: Out(PaymentOut)},
                errors=(
                    VALIDATION_ERROR, NOT_FOUND, NOT_OWNER, HOLD_EXPIRED, SEAT_TAKEN,
                    INSUFFICIENT_BALANCE, IDEMPOTENCY_CONFLICT,
                ),
                params=(IDEMPOTENCY_PARAM,), tag="money",
            ),
        ]  # fmt: skip
