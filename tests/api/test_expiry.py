"""Hold expiry on a server whose holds last 2 seconds: pushed events and no money taken."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.api.client import Api, error_code, message_of_type, subscribe, websocket
from tests.api.server import Server, running_server

pytestmark = pytest.mark.anyio

HOLD_SECONDS = 2


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("short-holds")
    with running_server(directory, {"HOLD_SECONDS": str(HOLD_SECONDS)}) as running:
        yield running


@pytest.fixture
async def short(short_server: Server) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield Api(short_server, http)


async def test_hold_expiry_warns_then_tells_the_holder_and_every_subscriber(short: Api) -> None:
    holder, watcher = await short.admitted("holder"), await short.admitted("watcher")
    concert_id, (day,) = await short.new_concert()
    async with (
        websocket(short.server, holder.token) as holder_ws,
        websocket(short.server, watcher.token) as watcher_ws,
    ):
        await subscribe(watcher_ws, concert_id, day)
        hold = (await short.hold(holder, concert_id, day, 9)).json()
        rid = hold["reservationId"]

        held = await message_of_type(watcher_ws, "seat.changed", seat=9)
        assert held == {
            "type": "seat.changed",
            "concertId": concert_id,
            "date": day,
            "seat": 9,
            "status": "HELD",
        }
        expiring = await message_of_type(holder_ws, "hold.expiring")
        assert expiring["reservationId"] == rid
        assert 0 <= expiring["secondsLeft"] <= HOLD_SECONDS
        expired = await message_of_type(holder_ws, "hold.expired")
        assert expired == {"type": "hold.expired", "reservationId": rid}
        freed = await message_of_type(watcher_ws, "seat.changed", seat=9)
        assert freed["status"] == "AVAILABLE"

    seat = await short.seat_status(concert_id, day, 9)
    assert (seat["status"], seat["holder"]) == ("AVAILABLE", None)


async def test_payment_after_expiry_takes_no_money(short: Api) -> None:
    user = await short.admitted()
    concert_id, (day,) = await short.new_concert(price=100)
    await short.charge(user, 500)
    async with websocket(short.server, user.token) as ws:
        rid = (await short.hold(user, concert_id, day, 1)).json()["reservationId"]
        await message_of_type(ws, "hold.expired", reservationId=rid)

    late = await short.pay(user, rid, key="late")
    assert (late.status_code, error_code(late)) == (409, "HOLD_EXPIRED")
    assert await short.balance(user) == 500
    assert (await short.me(user))["status"] == "PROCESSING"
    release = await short.delete(f"/api/reservations/{rid}", user)
    assert (release.status_code, error_code(release)) == (409, "HOLD_EXPIRED")
    assert (await short.get("/api/reservations", user)).json() == []
