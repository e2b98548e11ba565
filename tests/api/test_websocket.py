"""The websocket event stream: initial state, ranks, admission, seat changes, bad input."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.api.client import (
    Api,
    message_of_type,
    next_message,
    subscribe,
    websocket,
)
from web.schemas import (
    ErrorMessage,
    QueueAdmittedMessage,
    QueueExpiredMessage,
    QueueRankMessage,
    SeatChangedMessage,
)

pytestmark = pytest.mark.anyio


async def test_a_waiting_client_gets_falling_ranks_then_its_admission(api: Api) -> None:
    await api.until_queue_empty()
    async with api.paused_queue():
        ahead = [await api.waiting_user("ahead") for _ in range(2)]
        user = await api.waiting_user("me")
        # Admissions further apart than two rank passes (RANK_PERIOD, 1 s): a pass always
        # comes between two of them, so every rank is pushed before the next admission.
        await api.admin("PATCH", "/admin/queue", {"batchSize": 1, "intervalSeconds": 2.5})
    try:
        await api.until_status(ahead[0], "PROCESSING")  # one admitted at once, then one every 2.5 s
        async with websocket(api.server, user.token) as ws:
            ranks = [QueueRankMessage.model_validate(await next_message(ws)).rank]
            while (message := await next_message(ws))["type"] == "queue.rank":
                ranks.append(QueueRankMessage.model_validate(message).rank)
            admitted = QueueAdmittedMessage.model_validate(message)
    finally:
        await api.admin("PATCH", "/admin/queue", {"batchSize": 100, "intervalSeconds": 0.05})
    assert ranks[0] == 2 and ranks[-1] == 1
    assert ranks == sorted(ranks, reverse=True)
    assert admitted.active_until == (await api.me(user))["activeUntil"]
    assert (await api.me(ahead[1]))["status"] == "PROCESSING"


async def test_an_admitted_client_is_told_so_at_once_and_when_its_window_ends(api: Api) -> None:
    await api.admin("PATCH", "/admin/queue", {"activeTtlSeconds": 0.5})
    try:
        user = await api.admitted()
    finally:
        await api.admin("PATCH", "/admin/queue", {"activeTtlSeconds": 600})
    async with websocket(api.server, user.token) as ws:
        first = await next_message(ws)
        if first["type"] == "queue.admitted":  # connected before the window ended
            first = await next_message(ws)
        QueueExpiredMessage.model_validate(first)
        assert first["type"] == "queue.expired"


async def test_seat_changes_reach_subscribers_of_that_date_only(api: Api) -> None:
    watcher, buyer = await api.admitted("watcher"), await api.admitted("buyer")
    concert_id, (day, other_day) = await api.new_concert(dates=2)
    async with websocket(api.server, watcher.token) as ws:
        await subscribe(ws, concert_id, day)
        await subscribe(ws, concert_id, other_day)
        rid = (await api.hold(buyer, concert_id, day, 5)).json()["reservationId"]
        held = SeatChangedMessage.model_validate(await message_of_type(ws, "seat.changed"))
        assert (held.date, held.seat, held.status) == (day, 5, "HELD")
        await api.delete(f"/api/reservations/{rid}", buyer)
        freed = await message_of_type(ws, "seat.changed")
        assert (freed["date"], freed["seat"], freed["status"]) == (day, 5, "AVAILABLE")

        unsubscribe = {"type": "unsubscribe", "concertId": concert_id, "date": day}
        await ws.send(json.dumps(unsubscribe))
        await message_of_type(ws, "unsubscribed", date=day)
        await api.hold(buyer, concert_id, day, 6)  # no longer followed
        await api.hold(buyer, concert_id, other_day, 7)
        following = await message_of_type(ws, "seat.changed")
        assert (following["date"], following["seat"]) == (other_day, 7)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "VALIDATION_ERROR"),
        ("[]", "VALIDATION_ERROR"),
        ('{"type": "dance"}', "VALIDATION_ERROR"),
        ('{"type": "subscribe"}', "VALIDATION_ERROR"),
        ('{"type": "subscribe", "concertId": "x", "date": "tomorrow"}', "VALIDATION_ERROR"),
        ('{"type": "subscribe", "concertId": "nope", "date": "2031-03-01"}', "NOT_FOUND"),
        (json.dumps({"type": "subscribe", "pad": "x" * 5000}), "VALIDATION_ERROR"),
    ],
)
async def test_a_malformed_message_gets_an_error_event_and_the_socket_lives_on(
    api: Api, raw: str, code: str
) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert()
    async with websocket(api.server, user.token) as ws:
        await message_of_type(ws, "queue.admitted")
        await ws.send(raw)
        error = ErrorMessage.model_validate(await message_of_type(ws, "error"))
        assert error.code == code and error.message
        await subscribe(ws, concert_id, day)


@pytest.mark.parametrize(("token", "code"), [(None, "TOKEN_MISSING"), ("1.x", "TOKEN_INVALID")])
async def test_a_websocket_without_a_genuine_token_is_closed(
    api: Api, token: str | None, code: str
) -> None:
    async with websocket(api.server, token) as ws:
        error = await next_message(ws)
        assert (error["type"], error["code"]) == ("error", code)
        with pytest.raises(ConnectionClosed):
            await next_message(ws)
        assert ws.close_code == 1008


async def test_the_token_may_come_as_a_subprotocol_or_in_the_query(api: Api) -> None:
    user = await api.admitted()
    async with websocket(api.server, user.token) as ws:
        assert ws.subprotocol == "concert-queue"
        await message_of_type(ws, "queue.admitted")
    async with websocket(api.server, user.token, in_query=True) as ws:
        await message_of_type(ws, "queue.admitted")


async def test_a_plain_http_request_to_the_websocket_is_told_to_upgrade(api: Api) -> None:
    response = await api.get("/ws")
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "UPGRADE_REQUIRED"
