"""Setting a service up for a load run through its public and admin APIs.

Dates go on sale through `POST /admin/concerts`, users join through `POST /api/queue/tokens`
and are waited for until PROCESSING: the same paths a real on-sale takes, so a benchmark never
reaches around the contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

MAX_DATES_PER_CONCERT = 300  # keeps a POST /admin/concerts body under its 16 KiB cap
FIRST_DATE = dt.date(2030, 1, 1)


@dataclass(frozen=True, slots=True)
class DateOnSale:
    concert_id: str
    date: str
    seats: int
    price: int


@dataclass(frozen=True, slots=True)
class Member:
    """A user with a queue token."""

    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


async def put_on_sale(
    client: httpx.AsyncClient,
    base_url: str,
    admin_token: str,
    *,
    prefix: str,
    dates: int,
    seats: int,
    price: int,
) -> list[DateOnSale]:
    """`dates` dates of `seats` seats each, spread over as many concerts as the API needs."""
    on_sale: list[DateOnSale] = []
    for number, first in enumerate(range(0, dates, MAX_DATES_PER_CONCERT)):
        concert_id = f"{prefix}-{number}"
        count = min(MAX_DATES_PER_CONCERT, dates - first)
        days = [(FIRST_DATE + dt.timedelta(days=i)).isoformat() for i in range(count)]
        body = {
            "concertId": concert_id,
            "title": f"Load test {prefix} {number}",
            "venue": "Bench hall",
            "dates": [{"date": day, "seats": seats, "price": price} for day in days],
        }
        response = await client.post(
            f"{base_url}/admin/concerts", json=body, headers=admin_headers(admin_token)
        )
        if response.status_code != 201:
            raise RuntimeError(f"putting {concert_id} on sale: {response.text}")
        on_sale += [DateOnSale(concert_id, day, seats, price) for day in days]
    return on_sale


async def join_all(
    client: httpx.AsyncClient, base_url: str, user_ids: Sequence[str], concurrency: int = 32
) -> list[Member]:
    """Join every user (concurrently, in order of the list) and return their tokens."""
    members: list[Member | None] = [None] * len(user_ids)
    limiter = anyio.CapacityLimiter(concurrency)

    async def join(index: int) -> None:
        async with limiter:
            response = await client.post(
                f"{base_url}/api/queue/tokens", json={"userId": user_ids[index]}
            )
            response.raise_for_status()
            members[index] = Member(user_ids[index], response.json()["token"])

    async with anyio.create_task_group() as tg:
        for index in range(len(user_ids)):
            tg.start_soon(join, index)
    return [m for m in members if m is not None]


async def admin_get(client: httpx.AsyncClient, base_url: str, admin_token: str, path: str) -> Any:
    response = await client.get(f"{base_url}{path}", headers=admin_headers(admin_token))
    response.raise_for_status()
    return response.json()


async def wait_active(
    client: httpx.AsyncClient, base_url: str, admin_token: str, count: int, timeout: float = 60
) -> None:
    """Until at least `count` users are PROCESSING (admin totals), or TimeoutError."""
    with anyio.fail_after(timeout):
        while True:
            listing = await admin_get(client, base_url, admin_token, "/admin/actors")
            if listing["totals"]["active"] >= count:
                return
            await anyio.sleep(0.1)
