"""The public HTTP API (`/api/...`): queue tokens, catalog, seats, holds, balance, payments.

Each handler speaks to the engine's face only: reads (dates, seats, balance, a user's
reservations) come from its read views, state changes are commands. The endpoint wrapper has
applied the declared gate before a handler runs (web/endpoints.py).
"""

from __future__ import annotations

import re
from datetime import date as calendar_date
from typing import Any

from starlette.responses import Response

from engine.errors import (
    BALANCE_LIMIT,
    CHALLENGE_FAILED,
    HOLD_EXPIRED,
    HOLD_LIMIT,
    IDEMPOTENCY_CONFLICT,
    INSUFFICIENT_BALANCE,
    NOT_FOUND,
    NOT_OWNER,
    QUEUE_WAITING,
    ROOM_NOT_OPEN,
    SEAT_TAKEN,
    TOKEN_COMPLETED,
    TOKEN_EXPIRED,
    TOKEN_LEFT,
    VALIDATION_ERROR,
    WRONG_ROOM,
)
from engine.face import (
    CONCERT_ID,
    Challenge,
    Charge,
    Hold,
    Join,
    Leave,
    Pay,
    Release,
    Reservation,
    TokenView,
    parse_reservation_id,
)
from web import gate
from web.body import read_body
from web.endpoints import Call, Endpoint, Out, Param, json_response
from web.errors import OVERLOADED, ApiError
from web.examples import Sample
from web.responses import JsonResponse
from web.schemas import (
    DATE_PATTERN,
    BalanceOut,
    ChallengeOut,
    ChargeRequest,
    ConcertOut,
    DateOut,
    HoldRequest,
    JoinRequest,
    PaymentOut,
    PaymentRequest,
    QueueStatusOut,
    ReleaseOut,
    ReservationOut,
    SeatMapOut,
    SeatOut,
    TokenOut,
    instant,
)

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # 1 to 255 visible ASCII characters
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_DATE = re.compile(DATE_PATTERN)

IDEMPOTENCY_PARAM = Param(
    "Idempotency-Key",
    "header",
    "optional; a retry with the same key has the same effect and answer as the first request",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 255},
    required=False,
)
CONCERT_PARAM = Param(
    "concertId",
    "path",
    "concert id",
    {"type": "string", "pattern": CONCERT_ID.pattern},
    example=lambda sample: sample.concert_id,
)
DATE_PARAM = Param(
    "date",
    "path",
    "yyyy-mm-dd",
    {"type": "string", "format": "date"},
    example=lambda sample: sample.date,
)
ROOM_PARAM = Param(
    "concertId",
    "query",
    "a concert with its own on-sale; absent: the site-wide room",
    {"type": "string", "pattern": CONCERT_ID.pattern},
    required=False,
)
# `GET /api/queue/status` may be cached this long by a CDN in front of the service.
STATUS_MAX_AGE = 1
# Refusals of a charge or payment by a token that is not PROCESSING (the engine decides, as a
# retry with an earlier request's key is answered whatever the token's status now).
NOT_ACTIVE = (QUEUE_WAITING, TOKEN_COMPLETED, TOKEN_EXPIRED)


def token_out(view: TokenView) -> TokenOut:
    return TokenOut(
        token=view.token,
        user_id=view.user_id,
        status=view.status,
        rank=view.rank,
        eta_seconds=view.eta_seconds,
        active_until=instant(view.active_until),
        concert_id=view.concert_id,
        starts_at=instant(view.starts_at),
        reason="abandoned" if view.reason == "abandoned" else None,
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


def idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get("idempotency-key")
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


def concert_or_404(call: Call, concert_id: str) -> None:
    if call.engine.concert(concert_id) is None:
        raise ApiError(NOT_FOUND, f"no concert {concert_id}")


def room_param(call: Call) -> str | None:
    """The `concertId` query parameter: a known concert (404 otherwise), or None."""
    concert_id = call.request.query_params.get("concertId")
    if concert_id is None:
        return None
    if not CONCERT_ID.match(concert_id):
        raise ApiError(VALIDATION_ERROR, "concertId is not a concert id", field="concertId")
    concert_or_404(call, concert_id)
    return concert_id


# -- queue -----------------------------------------------------------------------------------


async def join(call: Call) -> Response:
    body = await read_body(call.request, JoinRequest)
    if body.concert_id is not None:
        concert_or_404(call, body.concert_id)
    view = await call.engine.ask(Join(body.user_id, body.concert_id, body.challenge, body.nonce))
    return json_response(token_out(view), 201 if view.new else 200)


async def me(call: Call) -> Response:
    me = call.me
    if me.concert_id is not None and me.status in ("WAITING", "PRE_QUEUE"):
        call.runtime.hub.sightings.note(me.concert_id, me.seq)  # its page is open
    return json_response(token_out(me))


async def leave(call: Call) -> Response:
    me = call.me
    view = await call.engine.ask(Leave(me.seq, me.concert_id))
    return json_response(token_out(view))


async def status(call: Call) -> Response:
    view = call.engine.room_status(room_param(call))
    if view is None:
        raise ApiError(NOT_FOUND, "no such room here")
    out = QueueStatusOut(
        concert_id=view.concert_id,
        state=view.state,
        waiting=view.waiting,
        pre_queued=view.pre_queued,
        starts_at=instant(view.starts_at),
        estimated_wait_seconds=view.estimated_wait_seconds,
    )
    return json_response(out, headers={"Cache-Control": f"public, max-age={STATUS_MAX_AGE}"})


async def challenge(call: Call) -> Response:
    concert_id = room_param(call)
    if concert_id is None or concert_id not in call.engine.room_concerts:
        raise ApiError(NOT_FOUND, "only a concert's own room asks for a proof of work")
    issued = await call.engine.ask(Challenge(concert_id))
    out = ChallengeOut(
        challenge=issued.challenge,
        difficulty=issued.difficulty,
        expires_at=instant(issued.expires_at) or "",
    )
    return json_response(out, headers={"Cache-Control": "no-store"})


# -- catalog ---------------------------------------------------------------------------------


async def concerts(call: Call) -> Response:
    currency = call.runtime.settings.currency
    rooms = call.engine.room_concerts
    return json_response(
        [
            ConcertOut(
                concert_id=concert.concert_id,
                title=concert.title,
                venue=concert.venue,
                dates=sorted(d.date for d in concert.dates),
                currency=currency,
                own_room=concert.concert_id in rooms,
            )
            for concert in call.engine.concerts()
        ]
    )


async def dates(call: Call) -> Response:
    concert_id = call.request.path_params["concertId"]
    concert_or_404(call, concert_id)
    gate.same_room(call.engine, call.me, concert_id)
    return json_response(
        [
            DateOut(
                date=d.date,
                available_seats=d.available_seats,
                total_seats=d.total_seats,
                price=d.price,
            )
            for d in call.engine.dates(concert_id)
            if d.available_seats
        ]
    )


async def seats(call: Call) -> Response:
    concert_id = call.request.path_params["concertId"]
    date = checked_date(call.request.path_params["date"])
    concert_or_404(call, concert_id)
    gate.same_room(call.engine, call.me, concert_id)
    seat_map = call.engine.seat_map(concert_id, date)
    if seat_map is None:
        raise ApiError(NOT_FOUND, f"no date {date} for concert {concert_id}")
    price = seat_map.price
    return json_response(
        SeatMapOut(
            concert_id=concert_id,
            date=date,
            seats=[SeatOut(number=s.number, status=s.status, price=price) for s in seat_map.seats],
            available=list(seat_map.available),
        )
    )


# -- reservations ----------------------------------------------------------------------------


async def hold(call: Call) -> Response:
    me = call.me
    body = await read_body(call.request, HoldRequest)
    gate.same_user(me, body.user_id)
    engine, room, concert_id = call.engine, me.concert_id, body.concert_id
    # `gate.same_room` inlined on the on-sale's busiest route: a call was 1% of a hold
    # (loadtests.count_instructions); tests/api/test_rooms.py holds through both ways.
    if room != concert_id and (room is not None or concert_id in engine.room_concerts):
        raise gate.wrong_room(concert_id)
    outcome = await engine.ask(Hold(me.user_id, concert_id, body.date, body.seat))
    # A repeated hold of one's own seat answers the existing hold (200), not a new one.
    status = 201 if outcome.created else 200
    return JsonResponse(ReservationOut.dump(reservation_fields(outcome.reservation)), status)


async def reservations(call: Call) -> Response:
    return json_response([reservation_out(r) for r in call.engine.reservations(call.me.user_id)])


async def release(call: Call) -> Response:
    reservation_id = call.request.path_params["reservationId"]
    parsed = parse_reservation_id(reservation_id)
    if parsed is not None:
        gate.same_room(call.engine, call.me, parsed[0])
    await call.engine.ask(Release(call.me.user_id, reservation_id))
    return json_response(ReleaseOut(reservation_id=reservation_id))


# -- money -----------------------------------------------------------------------------------


async def charge(call: Call) -> Response:
    me = call.me
    body = await read_body(call.request, ChargeRequest)
    gate.same_user(me, body.user_id)
    # A charge retried with its key is answered from its record whatever the token's status
    # now; the wallet decides, knowing the status (a new charge needs PROCESSING).
    status = me.status_at(call.engine.now())
    balance = await call.engine.ask(Charge(me.user_id, body.amount, idempotency_key(call), status))
    return json_response(balance_out(call, balance))


def balance_out(call: Call, balance: int) -> BalanceOut:
    return BalanceOut(
        user_id=call.me.user_id, balance=balance, currency=call.runtime.settings.currency
    )


async def balance(call: Call) -> Response:
    me = call.me
    return json_response(balance_out(call, call.engine.balance(me.user_id)))


async def pay(call: Call) -> Response:
    me = call.me
    key = idempotency_key(call)
    body = await read_body(call.request, PaymentRequest)
    gate.same_user(me, body.user_id)
    for reservation_id in body.reservation_ids:
        parsed = parse_reservation_id(reservation_id)
        if parsed is not None:
            gate.same_room(call.engine, me, parsed[0])
    # A payment completes the token; its retry (same Idempotency-Key, e.g. after a lost
    # answer) still gets the payment's outcome: the checkout decides, knowing the status.
    status = me.status_at(call.engine.now())
    result = await call.engine.ask(Pay(me.user_id, tuple(body.reservation_ids), key, status))
    return json_response(
        PaymentOut(
            payment_id=result.payment_id,
            amount=result.amount,
            reservations=[reservation_out(r) for r in result.reservations],
            balance=result.balance,
            currency=call.runtime.settings.currency,
        ),
        201,
    )


# -- the routes ------------------------------------------------------------------------------


def hold_example(sample: Sample) -> dict[str, object]:
    return {"concertId": sample.concert_id, "date": sample.date, "seat": sample.seat}


# What a hold makes possible, by the operation ids (the handlers' names) of pay and release.
HOLD_LINKS: dict[str, dict[str, object]] = {
    "pay": {
        "operationId": "pay",
        "description": "pay for the held seat",
        "requestBody": {"reservationIds": ["$response.body#/reservationId"]},
    },
    "release": {
        "operationId": "release",
        "description": "release the hold",
        "parameters": {"reservationId": "$response.body#/reservationId"},
    },
}


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "POST", "/api/queue/tokens", join,
            "Join the waiting room: a concert's own (concertId of a concert with an onSale) or "
            "the site-wide one (idempotent per user while PRE_QUEUE, WAITING or PROCESSING)",
            auth="none", body=JoinRequest, example=lambda _: {"userId": "alice"},
            responses={
                201: Out(TokenOut, description="a new token"),
                200: Out(TokenOut, description="the user's current token"),
            },
            errors=(NOT_FOUND, ROOM_NOT_OPEN, CHALLENGE_FAILED),
            tag="queue",
        ),
        Endpoint(
            "GET", "/api/queue/tokens/me", me,
            "The caller's token: status, rank (1-based while WAITING), ETA, active window; "
            "polling it keeps a waiting buyer's place",
            auth="token", responses={200: Out(TokenOut)}, errors=(TOKEN_LEFT,), tag="queue",
        ),
        Endpoint(
            "DELETE", "/api/queue/tokens/me", leave,
            "Leave the queue: the token becomes LEFT and everyone behind moves up",
            auth="token", responses={200: Out(TokenOut)},
            errors=(TOKEN_LEFT, TOKEN_COMPLETED, TOKEN_EXPIRED), tag="queue",
        ),
        Endpoint(
            "GET", "/api/queue/status", status,
            "A room's state, waiting and pre-queued buyers, start and estimated wait "
            "(no token; cacheable for a second)",
            auth="none", responses={200: Out(QueueStatusOut)}, errors=(NOT_FOUND,),
            params=(ROOM_PARAM,), tag="queue",
        ),
        Endpoint(
            "GET", "/api/queue/challenge", challenge,
            "A proof-of-work challenge for a join of a concert's room",
            auth="none", responses={200: Out(ChallengeOut)}, errors=(NOT_FOUND, OVERLOADED),
            params=(ROOM_PARAM,), tag="queue",
        ),
        Endpoint(
            "GET", "/api/concerts", concerts,
            "Concerts on sale (with any genuine token: a buyer's tickets name them)",
            auth="token", responses={200: Out(ConcertOut, many=True)}, tag="catalog",
        ),
        Endpoint(
            "GET", "/api/concerts/{concertId}/dates", dates,
            "Dates of a concert that still have a free seat",
            responses={200: Out(DateOut, many=True)}, errors=(NOT_FOUND, WRONG_ROOM),
            params=(CONCERT_PARAM,), tag="catalog",
        ),
        Endpoint(
            "GET", "/api/concerts/{concertId}/dates/{date}/seats", seats,
            "The seat map of a date",
            responses={200: Out(SeatMapOut)}, errors=(NOT_FOUND, WRONG_ROOM),
            params=(CONCERT_PARAM, DATE_PARAM), tag="catalog",
        ),
        Endpoint(
            "POST", "/api/reservations", hold,
            "Hold a seat for HOLD_SECONDS (at most MAX_HOLDS_PER_USER per date)",
            body=HoldRequest, example=hold_example,
            responses={
                201: Out(ReservationOut, description="the seat is held", links=HOLD_LINKS),
                200: Out(
                    ReservationOut, description="the caller already holds this seat",
                    links=HOLD_LINKS,
                ),
            },
            errors=(NOT_FOUND, SEAT_TAKEN, HOLD_LIMIT, NOT_OWNER, WRONG_ROOM),
            tag="reservations",
        ),
        Endpoint(
            "GET", "/api/reservations", reservations,
            "The caller's holds and purchases (with any genuine token, COMPLETED included)",
            auth="token", responses={200: Out(ReservationOut, many=True)}, tag="reservations",
        ),
        Endpoint(
            "DELETE", "/api/reservations/{reservationId}", release, "Release a hold",
            responses={200: Out(ReleaseOut)},
            errors=(NOT_FOUND, NOT_OWNER, HOLD_EXPIRED, SEAT_TAKEN, WRONG_ROOM),
            params=(Param("reservationId", "path", "reservation id"),), tag="reservations",
        ),
        Endpoint(
            "POST", "/api/balance/charge", charge,
            "Add money to the caller's balance (idempotent with Idempotency-Key, whose "
            "retry is answered from its record whatever the token's status now)",
            auth="token", body=ChargeRequest, example=lambda _: {"amount": 500},
            responses={200: Out(BalanceOut)},
            errors=(*NOT_ACTIVE, NOT_OWNER, IDEMPOTENCY_CONFLICT, BALANCE_LIMIT),
            params=(IDEMPOTENCY_PARAM,), tag="money",
        ),
        Endpoint(
            "GET", "/api/balance", balance,
            "The caller's balance (with any genuine token, COMPLETED included)",
            auth="token", responses={200: Out(BalanceOut)}, tag="money",
        ),
        Endpoint(
            "POST", "/api/payments", pay,
            "Pay held seats from the balance; completes the token (idempotent with "
            "Idempotency-Key, whose retry is answered even once the token is COMPLETED)",
            auth="token", body=PaymentRequest, responses={201: Out(PaymentOut)},
            errors=(
                *NOT_ACTIVE, NOT_FOUND, NOT_OWNER, HOLD_EXPIRED, SEAT_TAKEN,
                INSUFFICIENT_BALANCE, IDEMPOTENCY_CONFLICT, WRONG_ROOM,
            ),
            params=(IDEMPOTENCY_PARAM,), tag="money",
        ),
    ]  # fmt: skip
