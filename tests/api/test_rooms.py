"""Concerts with their own on-sale, on a real server: the pre-queue and its shuffle, leaving,
abandonment, WRONG_ROOM both ways, the proof of work, the status API, two rooms at once, and
kill -9 in the middle of an on-sale."""

from __future__ import annotations

import hashlib
import itertools
import time
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest

from tests.api.client import Api, error_code, eventually, message_of_type, unique, websocket
from tests.api.conftest import StartServer
from tests.api.rooms import (
    DAY,
    NEVER,
    join_room,
    new_room,
    ranks,
    solve,
    status,
    until_open,
)

pytestmark = pytest.mark.anyio


async def test_a_join_before_the_pre_queue_opens_is_refused_with_when_it_opens(api: Api) -> None:
    concert_id = await new_room(api, 3_600, preQueueSeconds=60)
    response = await api.post("/api/queue/tokens", {"userId": "early", "concertId": concert_id})
    assert (response.status_code, error_code(response)) == (403, "ROOM_NOT_OPEN")
    opens = datetime.fromisoformat(response.json()["error"]["opensAt"].replace("Z", "+00:00"))
    assert abs(opens.timestamp() - (time.time() + 3_540)) < 60
    assert (await status(api, concert_id))["state"] == "not_open"


async def test_the_pre_queue_is_shuffled_at_the_start_and_later_joins_rank_behind(
    api: Api,
) -> None:
    concert_id = await new_room(api, 6, intervalSeconds=NEVER)
    arrivals = [await join_room(api, concert_id) for _ in range(200)]
    first = await api.me(arrivals[0])
    assert (first["status"], first["rank"]) == ("PRE_QUEUE", None)
    assert first["startsAt"] is not None
    before = await status(api, concert_id)
    assert (before["state"], before["preQueued"]) == ("pre_queue", 200)
    await until_open(api, concert_id)
    shuffled = await ranks(api, arrivals)
    assert sorted(shuffled) == list(range(1, 201))
    assert shuffled != list(range(1, 201))
    late = [await join_room(api, concert_id) for _ in range(2)]
    assert await ranks(api, late) == [201, 202]


async def test_leaving_moves_everyone_behind_up_and_pushes_their_new_rank(api: Api) -> None:
    concert_id = await new_room(api, 0.5, intervalSeconds=NEVER)
    await until_open(api, concert_id)
    first, second, third = [await join_room(api, concert_id) for _ in range(3)]
    async with websocket(api.server, third.token) as ws:
        await message_of_type(ws, "queue.rank", rank=3)
        left = await api.delete("/api/queue/tokens/me", first)
        assert (left.status_code, left.json()["status"]) == (200, "LEFT")
        await message_of_type(ws, "queue.rank", rank=2)
    assert await ranks(api, [second, third]) == [1, 2]
    again = await api.delete("/api/queue/tokens/me", first)
    assert (again.status_code, error_code(again)) == (403, "TOKEN_LEFT")
    me = await api.get("/api/queue/tokens/me", first)
    assert (me.status_code, error_code(me)) == (403, "TOKEN_LEFT")
    rooms = (await api.admin("GET", "/admin/rooms"))["rooms"]
    assert next(r for r in rooms if r["concertId"] == concert_id)["left"] == 1


async def test_an_unseen_page_is_abandoned_while_polled_and_connected_ones_keep_their_place(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    api = Api(start_server({"ABANDON_SECONDS": "3"}), http)
    concert_id = await new_room(api, 0.5, intervalSeconds=NEVER)
    await until_open(api, concert_id)
    gone, polled, connected = [await join_room(api, concert_id) for _ in range(3)]
    async with websocket(api.server, connected.token) as ws:
        await message_of_type(ws, "queue.rank", rank=3)
        deadline = time.monotonic() + 6  # twice ABANDON_SECONDS: the sweep has passed
        while time.monotonic() < deadline:
            await api.me(polled)
            await anyio.sleep(0.5)
        await message_of_type(ws, "queue.rank", rank=2)
    abandoned = await api.me(gone)
    assert (abandoned["status"], abandoned["reason"]) == ("EXPIRED", "abandoned")
    assert (await api.me(polled))["rank"] == 1
    room = next(
        r for r in (await api.admin("GET", "/admin/rooms"))["rooms"] if r["concertId"] == concert_id
    )
    assert room["abandoned"] == 1 and room["droppedWaitedP50Seconds"] >= 3


async def test_a_room_token_is_wrong_elsewhere_and_a_site_token_is_wrong_in_a_room(
    api: Api,
) -> None:
    concert_id = await new_room(api, 0.5, batchSize=10, intervalSeconds=0.05)
    await until_open(api, concert_id)
    room_buyer = await join_room(api, concert_id)
    await api.until_status(room_buyer, "PROCESSING")
    site_buyer = await api.admitted("site")
    other_id, (other_day,) = await api.new_concert()

    elsewhere = await api.hold(room_buyer, other_id, other_day, 1)
    assert (elsewhere.status_code, error_code(elsewhere)) == (403, "WRONG_ROOM")
    other_seats = await api.get(f"/api/concerts/{other_id}/dates/{other_day}/seats", room_buyer)
    assert (other_seats.status_code, error_code(other_seats)) == (403, "WRONG_ROOM")
    in_room = await api.hold(site_buyer, concert_id, DAY, 1)
    assert (in_room.status_code, error_code(in_room)) == (403, "WRONG_ROOM")
    dates = await api.get(f"/api/concerts/{concert_id}/dates", site_buyer)
    assert (dates.status_code, error_code(dates)) == (403, "WRONG_ROOM")
    # The catalog says which concerts have a room of their own, so a page offers neither
    # token a concert it cannot open.
    listed = {
        c["concertId"]: c["ownRoom"] for c in (await api.get("/api/concerts", site_buyer)).json()
    }
    assert (listed[concert_id], listed[other_id]) == (True, False)

    held = await api.hold(room_buyer, concert_id, DAY, 1)
    assert held.status_code == 201, held.text
    assert (await api.charge(room_buyer, 100)).status_code == 200
    paid = await api.pay(room_buyer, held.json()["reservationId"])
    assert paid.status_code == 201, paid.text
    assert (await api.me(room_buyer))["status"] == "COMPLETED"


async def test_a_solved_proof_of_work_is_accepted_once_and_refused_reused_wrong_or_missing(
    api: Api,
) -> None:
    concert_id = await new_room(api, 60, proofOfWork=10)

    async def challenge() -> dict[str, Any]:
        response = await api.get("/api/queue/challenge", params={"concertId": concert_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["difficulty"] == 10
        return body

    issued = (await challenge())["challenge"]
    nonce = solve(issued, 10)
    await join_room(api, concert_id, challenge=issued, nonce=nonce)

    async def refused(**extra: Any) -> None:
        body = {"userId": unique("bot"), "concertId": concert_id, **extra}
        response = await api.post("/api/queue/tokens", body)
        assert (response.status_code, error_code(response)) == (403, "CHALLENGE_FAILED")

    await refused(challenge=issued, nonce=nonce)  # reused
    fresh = (await challenge())["challenge"]
    wrong = next(
        str(n)
        for n in itertools.count()
        if int.from_bytes(hashlib.sha256(f"{fresh}:{n}".encode()).digest(), "big") >> 246
    )
    await refused(challenge=fresh, nonce=wrong)
    await refused()  # missing
    await join_room(api, concert_id, challenge=fresh, nonce=solve(fresh, 10))


async def test_the_status_api_tells_state_queue_and_wait_without_a_token(api: Api) -> None:
    concert_id = await new_room(api, 600)
    await join_room(api, concert_id)
    room = await status(api, concert_id)
    assert room["concertId"] == concert_id and room["state"] == "pre_queue"
    assert (room["waiting"], room["preQueued"]) == (0, 1)
    assert room["startsAt"] is not None and room["estimatedWaitSeconds"] >= 590
    site = await status(api)
    assert (site["concertId"], site["state"], site["startsAt"]) == (None, "open", None)
    response = await api.get("/api/queue/status", params={"concertId": concert_id})
    assert "max-age" in response.headers["cache-control"]
    missing = await api.get("/api/queue/status", params={"concertId": "no-such-concert"})
    assert missing.status_code == 404


async def test_two_rooms_admit_at_their_own_rates_at_the_same_time(api: Api) -> None:
    slow = await new_room(api, 3, batchSize=2, intervalSeconds=0.5)
    fast = await new_room(api, 3, batchSize=10, intervalSeconds=0.5)
    for _ in range(30):
        await join_room(api, slow)
        await join_room(api, fast)

    async def figures() -> dict[str, dict[str, Any]]:
        rooms = (await api.admin("GET", "/admin/rooms"))["rooms"]
        return {r["concertId"]: r for r in rooms if r["concertId"] in (slow, fast)}

    async def fast_done() -> dict[str, dict[str, Any]] | None:
        now = await figures()
        assert now[slow]["admitted"] % 2 == 0 and now[fast]["admitted"] % 10 == 0
        return now if now[fast]["admitted"] == 30 else None

    done = await eventually(fast_done, "the fast room admitting everyone")
    assert 0 < done[slow]["admitted"] < 30 and done[slow]["waiting"] > 0
    assert done[fast]["admittedPerMinute"] > done[slow]["admittedPerMinute"] > 0


async def test_kill_9_keeps_the_pre_queue_the_shuffled_order_and_the_positions(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    server = start_server({})
    api = Api(server, http)
    concert_id = await new_room(api, 12, intervalSeconds=NEVER)
    buyers = [await join_room(api, concert_id) for _ in range(20)]
    server.kill()
    server.start()
    assert {(await api.me(b))["status"] for b in buyers} == {"PRE_QUEUE"}
    await until_open(api, concert_id)
    shuffled = await ranks(api, buyers)
    assert sorted(shuffled) == list(range(1, 21))
    late = await join_room(api, concert_id)
    server.kill()
    server.start()
    assert await ranks(api, buyers) == shuffled
    assert (await api.me(late))["rank"] == 21
