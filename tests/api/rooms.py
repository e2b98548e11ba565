"""Helpers of the rooms' API tests (tests/api/test_rooms.py, tests/cluster): on-sales of their
own, joining their rooms, their status."""

from __future__ import annotations

import hashlib
import itertools
import time
from datetime import UTC, datetime
from typing import Any

from tests.api.client import Api, User, eventually, unique

DAY = "2031-05-01"
NEVER = 3_600.0  # an interval no test waits for: nobody is admitted


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def new_room(api: Api, starts_in: float, **on_sale: Any) -> str:
    """A concert of our own with an on-sale starting `starts_in` seconds from now."""
    concert_id = unique("room")
    await api.admin(
        "POST",
        "/admin/concerts",
        {
            "concertId": concert_id,
            "title": "On-sale",
            "dates": [{"date": DAY, "seats": 50, "price": 10}],
            "onSale": {"startsAt": iso(time.time() + starts_in), **on_sale},
        },
    )
    return concert_id


async def join_room(api: Api, concert_id: str, user_id: str | None = None, **extra: Any) -> User:
    response = await api.post(
        "/api/queue/tokens", {"userId": user_id or unique("b"), "concertId": concert_id, **extra}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["concertId"] == concert_id
    return User(body["userId"], body["token"])


async def status(api: Api, concert_id: str | None = None) -> dict[str, Any]:
    params = {"concertId": concert_id} if concert_id else {}
    response = await api.get("/api/queue/status", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until_open(api: Api, concert_id: str) -> None:
    async def started() -> bool:
        state: str = (await status(api, concert_id))["state"]
        return state == "open"

    await eventually(started, f"the on-sale of {concert_id} starting")


async def ranks(api: Api, users: list[User]) -> list[int]:
    return [(await api.me(user))["rank"] for user in users]


def solve(challenge: str, difficulty: int) -> str:
    for n in itertools.count():
        digest = hashlib.sha256(f"{challenge}:{n}".encode()).digest()
        if int.from_bytes(digest, "big") >> (256 - difficulty) == 0:
            return str(n)
    raise AssertionError  # count() never ends
