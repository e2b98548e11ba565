"""A full actor mailbox answers 503 OVERLOADED with Retry-After at once, never a wrong answer."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.api.client import Api, error_code
from tests.api.conftest import StartServer

pytestmark = pytest.mark.anyio

ROUNDS = 50  # a loaded machine may spread a burst out; keep bursting until one overflows


async def test_a_full_mailbox_answers_503_overloaded_with_retry_after(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    # A mailbox of one command: a burst of holds on one date cannot all queue.
    api = Api(start_server({"MAILBOX_SIZE": "1", "MAX_HOLDS_PER_USER": "100"}), http)
    user = await api.admitted("burst")
    concert_id, (day,) = await api.new_concert(seats=100)
    answers: list[httpx.Response] = []

    async def hold(index: int) -> None:
        answers.append(await api.hold(user, concert_id, day, index + 1))

    for _ in range(ROUNDS):
        async with anyio.create_task_group() as tg:
            for index in range(100):
                tg.start_soon(hold, index)
        if any(answer.status_code == 503 for answer in answers):
            break

    overloaded = [a for a in answers if a.status_code == 503]
    assert overloaded, "a burst of 100 commands never overflowed a mailbox of 1"
    assert {error_code(a) for a in overloaded} == {"OVERLOADED"}
    assert {a.headers["Retry-After"] for a in overloaded} == {"1"}
    # Everything else is a real outcome: held (201, or 200 when a later round holds again).
    assert {a.status_code for a in answers} <= {200, 201, 503}
    actor = await api.admin("GET", f"/admin/actors/date:{concert_id}:{day}")
    held = sum(1 for seat in actor["seats"] if seat["status"] == "HELD")
    assert held == len({a.json()["seat"] for a in answers if a.status_code in (200, 201)})
    assert actor["overloaded"] >= len(overloaded)
