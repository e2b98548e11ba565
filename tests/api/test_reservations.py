"""Catalog, seats and holds over HTTP: listings, holding, contention, limits, release."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from tests.api.client import Api, error_code

pytestmark = pytest.mark.anyio


async def test_concerts_dates_and_seats_are_listed(api: Api) -> None:
    user = await api.admitted()
    concert_id, days = await api.new_concert(dates=2, seats=10, price=75)

    concerts = (await api.get("/api/concerts", user)).json()
    mine = next(c for c in concerts if c["concertId"] == concert_id)
    assert mine == {
        "concertId": concert_id,
        "title": "Test concert",
        "venue": "",
        "dates": days,
        "currency": "EUR",
        "ownRoom": False,
    }

    dates = (await api.get(f"/api/concerts/{concert_id}/dates", user)).json()
    assert dates == [
        {"date": day, "availableSeats": 10, "totalSeats": 10, "price": 75} for day in days
    ]

    seats = (await api.get(f"/api/concerts/{concert_id}/dates/{days[0]}/seats", user)).json()
    assert seats["concertId"] == concert_id and seats["date"] == days[0]
    assert seats["seats"][0] == {"number": 1, "status": "AVAILABLE", "price": 75}
    assert seats["available"] == list(range(1, 11))


async def test_a_date_without_a_free_seat_is_not_listed(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert(seats=1)
    assert (await api.hold(user, concert_id, day, 1)).status_code == 201
    dates = (await api.get(f"/api/concerts/{concert_id}/dates", user)).json()
    assert dates == []
    seats = (await api.get(f"/api/concerts/{concert_id}/dates/{day}/seats", user)).json()
    assert seats["available"] == [] and seats["seats"][0]["status"] == "HELD"


async def test_unknown_concert_or_date_is_not_found(api: Api) -> None:
    user = await api.admitted()
    concert_id, _ = await api.new_concert()
    for path in (
        "/api/concerts/nope/dates",
        "/api/concerts/nope/dates/2031-03-01/seats",
        f"/api/concerts/{concert_id}/dates/2031-04-01/seats",
    ):
        response = await api.get(path, user)
        assert (response.status_code, error_code(response)) == (404, "NOT_FOUND"), path
    hold = await api.hold(user, concert_id, "2031-04-01", 1)
    assert (hold.status_code, error_code(hold)) == (404, "NOT_FOUND")
    bad_date = await api.get(f"/api/concerts/{concert_id}/dates/2031-02-30/seats", user)
    assert (bad_date.status_code, error_code(bad_date)) == (422, "VALIDATION_ERROR")
    assert bad_date.json()["error"]["field"] == "date"


async def test_hold_answers_201_and_holding_again_answers_the_same_hold(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert(price=90)
    first = await api.hold(user, concert_id, day, 7)
    assert first.status_code == 201
    body = first.json()
    assert body["status"] == "HELD" and body["seat"] == 7 and body["price"] == 90
    assert body["concertId"] == concert_id and body["date"] == day
    assert body["expiresAt"].endswith("Z")
    again = await api.hold(user, concert_id, day, 7)
    assert again.status_code == 200
    assert again.json()["reservationId"] == body["reservationId"]


async def test_second_hold_on_same_seat_is_refused_with_seat_taken(api: Api) -> None:
    alice, bob = await api.admitted("alice"), await api.admitted("bob")
    concert_id, (day,) = await api.new_concert()
    assert (await api.hold(alice, concert_id, day, 3)).status_code == 201
    refused = await api.hold(bob, concert_id, day, 3)
    assert (refused.status_code, error_code(refused)) == (409, "SEAT_TAKEN")


async def test_200_concurrent_holds_on_one_seat_give_exactly_one_201(api: Api) -> None:
    users = await api.admitted_many(200, "rush")
    concert_id, (day,) = await api.new_concert()
    responses: list[httpx.Response] = []

    async def hold(user_index: int) -> None:
        responses.append(await api.hold(users[user_index], concert_id, day, 1))

    async with anyio.create_task_group() as tg:
        for index in range(200):
            tg.start_soon(hold, index)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 199
    assert {error_code(r) for r in responses if r.status_code == 409} == {"SEAT_TAKEN"}
    winner = next(r for r in responses if r.status_code == 201).json()
    seat = await api.seat_status(concert_id, day, 1)
    assert seat["status"] == "HELD" and seat["reservationId"] == winner["reservationId"]


async def test_a_fifth_hold_on_one_date_is_refused_with_hold_limit(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day, other_day) = await api.new_concert(dates=2)
    for seat in range(1, 5):
        assert (await api.hold(user, concert_id, day, seat)).status_code == 201
    refused = await api.hold(user, concert_id, day, 5)
    assert (refused.status_code, error_code(refused)) == (409, "HOLD_LIMIT")
    assert (await api.hold(user, concert_id, other_day, 5)).status_code == 201


async def test_a_seat_the_date_does_not_have_is_not_found(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert(seats=50)
    refused = await api.hold(user, concert_id, day, 51)  # a valid seat number, no such seat
    assert (refused.status_code, error_code(refused)) == (404, "NOT_FOUND")
    assert refused.json()["error"]["field"] == "seat"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seat": "7"}, "seat"),
        ({"seat": 7.5}, "seat"),
        ({"seat": True}, "seat"),
        ({"seat": 0}, "seat"),
        ({"seat": 100_001}, "seat"),
        ({"seat": -1}, "seat"),
        ({"seat": None}, "seat"),
        ({"date": "2031-3-1"}, "date"),
        ({"date": "2031-02-30"}, "date"),
        ({"concertId": 5}, "concertId"),
        ({"concert_id": "x"}, "concert_id"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_hold_bodies_are_validated_strictly(
    api: Api, body: dict[str, Any], field: str
) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert()
    request = {"concertId": concert_id, "date": day, "seat": 7, **body}
    response = await api.post("/api/reservations", request, user)
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")
    assert response.json()["error"]["field"] == field


async def test_a_missing_field_is_named(api: Api) -> None:
    user = await api.admitted()
    response = await api.post("/api/reservations", {"concertId": "x", "date": "2031-03-01"}, user)
    assert (response.status_code, response.json()["error"]["field"]) == (422, "seat")


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'{"seat": 1', json.dumps({"pad": "x" * 17_000}).encode()],
)
async def test_bodies_that_are_not_a_json_object_or_too_big_are_refused(
    api: Api, content: bytes
) -> None:
    user = await api.admitted()
    response = await api.post("/api/reservations", user=user, content=content)
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "content",
    [
        b'{"concertId": "c", "concertId": "d", "date": "2031-03-01", "seat": 1}',
        b'{"userId": "bob", "userId": "alice", "concertId": "c", "date": "2031-03-01", "seat": 1}',
        b'{"concertId": "c", "date": "2031-03-01", "seat": 1, "seat": 2}',
    ],
)
async def test_a_key_given_twice_is_refused(api: Api, content: bytes) -> None:
    user = await api.admitted()
    response = await api.post("/api/reservations", user=user, content=content)
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")
    assert "twice" in response.json()["error"]["message"]


async def test_a_colon_in_a_string_is_not_taken_for_a_key(api: Api) -> None:
    user = await api.admitted()
    content = b'{"concertId": "no:such", "date": "2031-03-01", "seat": 1}'
    response = await api.post("/api/reservations", user=user, content=content)
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")
    assert response.json()["error"]["field"] == "concertId"  # its pattern, not a duplicate


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_sent_as_json_is_refused_415(api: Api, media: str) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert()
    body = json.dumps({"concertId": concert_id, "date": day, "seat": 1}).encode()
    headers = {"Content-Type": media}
    response = await api.post("/api/reservations", user=user, content=body, headers=headers)
    assert (response.status_code, error_code(response)) == (415, "UNSUPPORTED_MEDIA_TYPE")
    for media_ok in ("application/json; charset=utf-8", "application/merge-patch+json"):
        headers = {"Content-Type": media_ok}
        ok = await api.post("/api/reservations", user=user, content=body, headers=headers)
        assert ok.status_code in (200, 201), ok.text


async def test_a_body_naming_another_user_is_refused_with_not_owner(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert()
    body = {"concertId": concert_id, "date": day, "seat": 1, "userId": "somebody-else"}
    response = await api.post("/api/reservations", body, user)
    assert (response.status_code, error_code(response)) == (403, "NOT_OWNER")
    body["userId"] = user.user_id
    assert (await api.post("/api/reservations", body, user)).status_code == 201


async def test_reservations_lists_the_callers_holds_only(api: Api) -> None:
    alice, bob = await api.admitted("alice"), await api.admitted("bob")
    concert_id, (day,) = await api.new_concert()
    held = [(await api.hold(alice, concert_id, day, n)).json() for n in (2, 1)]
    await api.hold(bob, concert_id, day, 3)
    listed = (await api.get("/api/reservations", alice)).json()
    assert sorted(r["reservationId"] for r in listed) == sorted(h["reservationId"] for h in held)
    assert [r["seat"] for r in listed] == [1, 2]


async def test_a_hold_is_released_by_its_holder_only(api: Api) -> None:
    alice, bob = await api.admitted("alice"), await api.admitted("bob")
    concert_id, (day,) = await api.new_concert()
    rid = (await api.hold(alice, concert_id, day, 4)).json()["reservationId"]

    stolen = await api.delete(f"/api/reservations/{rid}", bob)
    assert (stolen.status_code, error_code(stolen)) == (403, "NOT_OWNER")

    released = await api.delete(f"/api/reservations/{rid}", alice)
    assert released.status_code == 200
    assert released.json() == {"reservationId": rid, "status": "RELEASED"}
    assert (await api.seat_status(concert_id, day, 4))["status"] == "AVAILABLE"

    again = await api.delete(f"/api/reservations/{rid}", alice)
    assert (again.status_code, error_code(again)) == (404, "NOT_FOUND")
    unknown = await api.delete("/api/reservations/not-a-reservation", alice)
    assert (unknown.status_code, error_code(unknown)) == (404, "NOT_FOUND")
    assert (await api.hold(bob, concert_id, day, 4)).status_code == 201
