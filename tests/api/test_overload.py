"""A full actor mailbox answers 503 OVERLOADED with Retry-After at once, never a wrong answer.

Only commands that find their actor busy queue: an idle seat, queue or wallet actor runs a turn
at once in the asking request. A checkout's turn awaits the seats and the wallet, so payments of
users who share a checkout actor queue behind each other, and a mailbox of one overflows.
"""

from __future__ import annotations

import itertools

import anyio
import httpx
import pytest

from engine.actors.wallet import shard_of
from engine.config import EngineConfig
from tests.api.client import Api, User, error_code, unique
from tests.api.conftest import StartServer

pytestmark = pytest.mark.anyio

ROUNDS = 10  # a loaded machine may spread a burst out; keep bursting until one overflows
BURST = 40
PRICE = 10


def users_of_one_checkout(count: int) -> list[str]:
    """User ids that share a checkout actor (payments are sharded by user)."""
    shards = EngineConfig().checkout_shards
    prefix = unique("burst")
    names = (f"{prefix}-{n}" for n in itertools.count())
    return list(itertools.islice((n for n in names if shard_of(n, shards) == 0), count))


async def pay_all_at_once(api: Api, users: list[tuple[User, str]]) -> dict[int, httpx.Response]:
    """Each user pays their one reservation, all at once; answers by seat."""
    answers: dict[int, httpx.Response] = {}

    async def pay(seat: int, user: User, reservation_id: str) -> None:
        answers[seat] = await api.pay(user, reservation_id)

    async with anyio.create_task_group() as tg:
        for seat, (user, reservation_id) in enumerate(users, start=1):
            tg.start_soon(pay, seat, user, reservation_id)
    return answers


async def test_a_full_mailbox_answers_503_overloaded_with_retry_after(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    api = Api(start_server({"MAILBOX_SIZE": "1"}), http)
    answers: list[httpx.Response] = []
    for _ in range(ROUNDS):
        concert_id, (day,) = await api.new_concert(seats=BURST, price=PRICE)
        users = []
        for seat, user_id in enumerate(users_of_one_checkout(BURST), start=1):
            user = User(user_id, (await api.join(user_id)).json()["token"])
            await api.until_status(user, "PROCESSING")
            assert (await api.charge(user, 100)).status_code == 200
            held = await api.hold(user, concert_id, day, seat)
            assert held.status_code == 201, held.text
            users.append((user, held.json()["reservationId"]))
        burst = await pay_all_at_once(api, users)
        answers += burst.values()
        # Nothing half done: a paid seat is sold and charged, a refused one still held and
        # its buyer's money untouched.
        for seat, (user, _) in enumerate(users, start=1):
            answer = burst[seat]
            assert answer.status_code in (201, 503), answer.text
            status = (await api.seat_status(concert_id, day, seat))["status"]
            if answer.status_code == 201:
                assert status == "SOLD" and answer.json()["balance"] == 100 - PRICE
            else:
                assert status == "HELD" and await api.balance(user) == 100
        if any(answer.status_code == 503 for answer in answers):
            break

    overloaded = [a for a in answers if a.status_code == 503]
    assert overloaded, f"bursts of {BURST} payments never overflowed a mailbox of 1"
    assert {error_code(a) for a in overloaded} == {"OVERLOADED"}
    assert {a.headers["Retry-After"] for a in overloaded} == {"1"}
    checkouts = (await api.admin("GET", "/admin/actors"))["actors"]
    assert sum(a["overloaded"] for a in checkouts if a["kind"] == "checkout") >= len(overloaded)
