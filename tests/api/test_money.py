"""Balance and payments over HTTP: charges, idempotency, concurrency, checkout outcomes."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tests.api.client import Api, User, error_code, message_of_type, unique, websocket

pytestmark = pytest.mark.anyio


async def test_charge_adds_to_the_balance(api: Api) -> None:
    user = await api.admitted()
    assert await api.balance(user) == 0
    response = await api.charge(user, 250)
    assert response.status_code == 200
    assert response.json() == {"userId": user.user_id, "balance": 250, "currency": "EUR"}
    assert (await api.charge(user, 10**9)).json()["balance"] == 10**9 + 250
    assert await api.balance(user) == 10**9 + 250


async def test_charge_is_idempotent_with_an_idempotency_key(api: Api) -> None:
    user = await api.admitted()
    first = await api.charge(user, 300, key="top-up-1")
    retry = await api.charge(user, 300, key="top-up-1")
    assert first.json()["balance"] == retry.json()["balance"] == 300
    assert (await api.charge(user, 300, key="top-up-2")).json()["balance"] == 600
    conflicting = await api.charge(user, 999, key="top-up-1")
    assert (conflicting.status_code, error_code(conflicting)) == (409, "IDEMPOTENCY_CONFLICT")
    assert await api.balance(user) == 600


async def test_a_bad_idempotency_key_is_refused(api: Api) -> None:
    user = await api.admitted()
    response = await api.charge(user, 5, key="x" * 256)
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")
    assert response.json()["error"]["field"] == "Idempotency-Key"


@pytest.mark.parametrize("amount", [0, -5, 10**9 + 1, 1.5, 10.5, "5", True, None])
async def test_amount_must_be_an_integer_from_1_to_a_billion(api: Api, amount: Any) -> None:
    user = await api.admitted()
    response = await api.post("/api/balance/charge", {"amount": amount}, user)
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")
    assert response.json()["error"]["field"] == "amount"
    assert await api.balance(user) == 0


async def test_an_amount_written_with_a_zero_fraction_is_that_integer(api: Api) -> None:
    user = await api.admitted()
    response = await api.post("/api/balance/charge", {"amount": 10.0}, user)
    assert (response.status_code, response.json()["balance"]) == (200, 10)


async def test_charge_naming_another_user_is_refused(api: Api) -> None:
    user = await api.admitted()
    response = await api.post("/api/balance/charge", {"amount": 5, "userId": "mallory"}, user)
    assert (response.status_code, error_code(response)) == (403, "NOT_OWNER")


async def test_100_concurrent_charges_sum_exactly(api: Api) -> None:
    user = await api.admitted()
    answers: list[httpx.Response] = []

    async def charge(amount: int) -> None:
        answers.append(await api.charge(user, amount, key=f"k{amount}"))

    async with anyio.create_task_group() as tg:
        for amount in range(1, 101):
            tg.start_soon(charge, amount)
    assert {r.status_code for r in answers} == {200}
    assert await api.balance(user) == sum(range(1, 101))
    # Each answer reports the balance right after its own charge: all different.
    assert len({r.json()["balance"] for r in answers}) == 100


async def held(api: Api, user: User, seats: int = 1, price: int = 100) -> list[dict[str, Any]]:
    concert_id, (day,) = await api.new_concert(price=price)
    return [(await api.hold(user, concert_id, day, n)).json() for n in range(1, seats + 1)]


async def test_payment_sells_the_seats_and_completes_the_token(api: Api) -> None:
    user = await api.admitted()
    holds = await held(api, user, seats=2, price=120)
    await api.charge(user, 1000)
    async with websocket(api.server, user.token) as ws:
        await message_of_type(ws, "queue.admitted")
        response = await api.pay(user, *(h["reservationId"] for h in holds))
        assert response.status_code == 201
        paid = response.json()
        assert paid["amount"] == 240 and paid["balance"] == 760
        assert paid["paymentId"]
        assert sorted(r["seat"] for r in paid["reservations"]) == [1, 2]
        assert {r["status"] for r in paid["reservations"]} == {"SOLD"}
        assert {r["paymentId"] for r in paid["reservations"]} == {paid["paymentId"]}
        await message_of_type(ws, "queue.completed")

    assert (await api.me(user))["status"] == "COMPLETED"
    after = await api.get("/api/balance", user)
    assert (after.status_code, after.json()["balance"]) == (200, 760)
    tickets = await api.get("/api/reservations", user)
    assert tickets.status_code == 200
    assert {(r["seat"], r["status"], r["paymentId"]) for r in tickets.json()} == {
        (1, "SOLD", paid["paymentId"]),
        (2, "SOLD", paid["paymentId"]),
    }
    hold_again = await api.hold(user, holds[0]["concertId"], holds[0]["date"], 3)
    assert (hold_again.status_code, error_code(hold_again)) == (403, "TOKEN_COMPLETED")
    seat = await api.seat_status(holds[0]["concertId"], holds[0]["date"], 1)
    assert (seat["status"], seat["holder"]) == ("SOLD", user.user_id)


async def test_payment_is_idempotent_even_once_the_token_is_completed(api: Api) -> None:
    user = await api.admitted()
    (hold,) = await held(api, user, price=100)
    await api.charge(user, 500)
    first = await api.pay(user, hold["reservationId"], key="pay-1")
    retry = await api.pay(user, hold["reservationId"], key="pay-1")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    other_key = await api.pay(user, hold["reservationId"], key="pay-2")
    assert (other_key.status_code, error_code(other_key)) == (403, "TOKEN_COMPLETED")
    again = await api.join(user.user_id)
    fresh = User(user.user_id, again.json()["token"])
    await api.until_status(fresh, "PROCESSING")
    assert await api.balance(fresh) == 400


async def test_a_payment_key_reused_for_other_reservations_is_a_conflict(api: Api) -> None:
    user = await api.admitted()
    first, second = await held(api, user, price=100, seats=2)
    await api.charge(user, 500)
    assert (await api.pay(user, first["reservationId"], key="pay-1")).status_code == 201
    reused = await api.pay(user, second["reservationId"], key="pay-1")
    assert (reused.status_code, error_code(reused)) == (409, "IDEMPOTENCY_CONFLICT")


async def test_a_charge_retried_after_paying_is_answered_from_its_record(api: Api) -> None:
    user = await api.admitted()
    (hold,) = await held(api, user, price=100)
    charged = await api.charge(user, 500, key="top-up")
    assert (await api.pay(user, hold["reservationId"], key="pay-1")).status_code == 201
    retry = await api.charge(user, 500, key="top-up")
    assert (retry.status_code, retry.json()) == (200, charged.json())
    fresh = await api.charge(user, 500, key="another")
    assert (fresh.status_code, error_code(fresh)) == (403, "TOKEN_COMPLETED")


async def test_insufficient_balance_takes_nothing_and_keeps_the_hold(api: Api) -> None:
    user = await api.admitted()
    (hold,) = await held(api, user, price=100)
    await api.charge(user, 99)
    refused = await api.pay(user, hold["reservationId"])
    assert (refused.status_code, error_code(refused)) == (402, "INSUFFICIENT_BALANCE")
    assert await api.balance(user) == 99
    seat = await api.seat_status(hold["concertId"], hold["date"], 1)
    assert (seat["status"], seat["reservationId"]) == ("HELD", hold["reservationId"])
    await api.charge(user, 1)
    assert (await api.pay(user, hold["reservationId"])).status_code == 201


async def test_paying_another_users_hold_is_refused(api: Api) -> None:
    alice, mallory = await api.admitted("alice"), await api.admitted("mallory")
    (hold,) = await held(api, alice)
    await api.charge(mallory, 1000)
    refused = await api.pay(mallory, hold["reservationId"])
    assert (refused.status_code, error_code(refused)) == (403, "NOT_OWNER")
    assert await api.balance(mallory) == 1000


async def test_payment_bodies_are_validated(api: Api) -> None:
    user = await api.admitted()
    for body, field in (
        ({"reservationIds": []}, "reservationIds"),
        ({"reservationIds": "r1"}, "reservationIds"),
        ({"reservationIds": [1]}, "reservationIds.0"),
        ({"reservationIds": ["r"] * 51}, "reservationIds"),
        ({"reservation_ids": ["r"]}, "reservationIds"),
    ):
        response = await api.post("/api/payments", body, user)
        assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR"), body
        assert response.json()["error"]["field"] in (field, "reservation_ids"), body
    unknown = await api.pay(user, "nope.2031-03-01.1.1")
    assert (unknown.status_code, error_code(unknown)) == (404, "NOT_FOUND")


async def test_paying_a_seat_twice_is_refused(api: Api) -> None:
    user = await api.admitted()
    (hold,) = await held(api, user)
    await api.charge(user, 1000)
    assert (await api.pay(user, hold["reservationId"])).status_code == 201
    again = await api.join(user.user_id)
    fresh = User(user.user_id, again.json()["token"])
    await api.until_status(fresh, "PROCESSING")
    second = await api.pay(fresh, hold["reservationId"])
    assert (second.status_code, error_code(second)) == (404, "NOT_FOUND")
    assert await api.balance(fresh) == 900
    bought = (await api.get("/api/reservations", fresh)).json()
    assert [(r["reservationId"], r["status"]) for r in bought] == [(hold["reservationId"], "SOLD")]


async def test_unique_user_names_do_not_share_balances(api: Api) -> None:
    one, two = await api.admitted(unique("one")), await api.admitted(unique("two"))
    await api.charge(one, 7)
    assert (await api.balance(one), await api.balance(two)) == (7, 0)
