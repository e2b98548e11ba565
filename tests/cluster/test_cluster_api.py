"""The API's core scenarios against cluster mode: 2 shard hosts, 2 gateways, over real HTTP and
websockets, each request sent to a gateway chosen on purpose (by its own port)."""

from __future__ import annotations

import anyio
import pytest

from tests.api.client import (
    Api,
    User,
    error_code,
    eventually,
    message_of_type,
    subscribe,
    websocket,
)
from tests.api.rooms import DAY, join_room, new_room, ranks, until_open
from tests.cluster.conftest import GATEWAYS, SHARDS

pytestmark = pytest.mark.anyio


async def test_admission_goes_in_batches_in_join_order_whichever_gateway_was_used(
    apis: tuple[Api, Api],
) -> None:
    first, second = apis
    await first.until_queue_empty()
    async with first.paused_queue():
        users = [await (first, second)[n % 2].waiting_user("batch") for n in range(150)]
        await first.admin("PATCH", "/admin/queue", {"batchSize": 100, "intervalSeconds": 2.0})
    try:
        await first.until_status(users[0], "PROCESSING")
        statuses = [(await second.me(user))["status"] for user in users]
        assert statuses == ["PROCESSING"] * 100 + ["WAITING"] * 50
        await second.until_status(users[-1], "PROCESSING")  # the next batch, 2 s later
    finally:
        await first.admin("PATCH", "/admin/queue", {"batchSize": 100, "intervalSeconds": 0.05})


async def test_200_holds_racing_for_one_seat_through_two_gateways_have_one_winner(
    apis: tuple[Api, Api],
) -> None:
    first = apis[0]
    concert_id, (day,) = await first.new_concert(seats=10)
    users = await first.admitted_many(200, prefix="racer")
    statuses: list[int] = []

    async def race(index: int, user: User) -> None:
        response = await apis[index % 2].hold(user, concert_id, day, 1)
        statuses.append(response.status_code)
        if response.status_code != 201:
            assert error_code(response) == "SEAT_TAKEN"

    async with anyio.create_task_group() as tg:
        for index, user in enumerate(users):
            tg.start_soon(race, index, user)
    assert statuses.count(201) == 1
    assert statuses.count(409) == 199


async def test_a_charge_retried_with_its_key_through_the_other_gateway_is_made_once(
    apis: tuple[Api, Api],
) -> None:
    first, second = apis
    user = await first.admitted("charger")
    one = await first.charge(user, 300, key="top-up")
    again = await second.charge(user, 300, key="top-up")
    assert one.status_code == again.status_code == 200
    assert one.json() == again.json() == {"userId": user.user_id, "balance": 300, "currency": "EUR"}

    async def balance_read_everywhere() -> bool:
        return all([await api.balance(user) == 300 for api in apis])

    await eventually(balance_read_everywhere, "both gateways reading the balance")


async def test_a_payment_over_dates_of_both_shards_sells_them_and_its_retry_answers_the_same(
    apis: tuple[Api, Api],
) -> None:
    first, second = apis
    concert_id, days = await first.new_concert(dates=6, price=70)
    user = await first.admitted("payer")
    holds = [(await first.hold(user, concert_id, day, 2)).json() for day in days]
    await second.charge(user, 1_000, key="top-up")
    paid = await first.pay(user, *(h["reservationId"] for h in holds), key="pay-1")
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert body["amount"] == 6 * 70 and body["balance"] == 1_000 - 6 * 70
    assert {r["status"] for r in body["reservations"]} == {"SOLD"}
    retry = await second.pay(user, *(h["reservationId"] for h in holds), key="pay-1")
    assert (retry.status_code, retry.json()) == (201, body)

    async def completed_everywhere() -> bool:
        return all([(await api.me(user))["status"] == "COMPLETED" for api in apis])

    await eventually(completed_everywhere, "both gateways seeing the token COMPLETED")

    async def hosts_of_the_dates() -> set[str]:  # the admin's figures are fetched every 2 s
        actors = await first.admin("GET", "/admin/actors")
        prefix = f"date:{concert_id}:"
        hosts = {a["host"] for a in actors["actors"] if a["key"].startswith(prefix)}
        return hosts if len(hosts) == SHARDS else set()

    await eventually(hosts_of_the_dates, "six dates spread over both shards")


async def test_a_hold_expires_with_its_events_on_the_other_gateways_websocket(
    apis: tuple[Api, Api],
) -> None:
    first, second = apis
    concert_id, (day,) = await first.new_concert()
    user = await first.admitted("expiring")
    async with websocket(second.server, user.token) as ws:
        await subscribe(ws, concert_id, day)
        held = (await first.hold(user, concert_id, day, 5)).json()
        await message_of_type(ws, "seat.changed", seat=5, status="HELD")
        await message_of_type(ws, "hold.expired", reservationId=held["reservationId"])
        await message_of_type(ws, "seat.changed", seat=5, status="AVAILABLE")


async def test_a_waiting_client_gets_its_rank_and_seat_changes_from_any_gateway(
    apis: tuple[Api, Api],
) -> None:
    first, second = apis
    concert_id, (day,) = await first.new_concert()
    await first.until_queue_empty()
    async with first.paused_queue():
        ahead = [await first.waiting_user("ahead") for _ in range(2)]
        me = await second.waiting_user("me")
        async with websocket(second.server, me.token) as ws:
            rank = await message_of_type(ws, "queue.rank")
            assert rank["rank"] == 3
    buyer = await second.admitted("buyer")
    watcher = await first.admitted("watcher")
    async with websocket(first.server, watcher.token) as ws:
        await subscribe(ws, concert_id, day)
        assert (await second.hold(buyer, concert_id, day, 9)).status_code == 201
        await message_of_type(ws, "seat.changed", seat=9, status="HELD")
    for user in ahead:
        await first.until_status(user, "PROCESSING")


async def test_the_admin_sees_every_shard_and_gateway(apis: tuple[Api, Api]) -> None:
    cluster = await apis[1].admin("GET", "/admin/cluster")
    assert cluster["mode"] == "cluster"
    assert [s["shard"] for s in cluster["shards"]] == list(range(SHARDS))
    assert all(s["reachable"] and s["healthy"] and s["epoch"] >= 1 for s in cluster["shards"])
    assert all(s["recoverySeconds"] is not None for s in cluster["shards"])
    assert [g["index"] for g in cluster["gateways"]] == list(range(GATEWAYS))
    actors = await apis[0].admin("GET", "/admin/actors")
    assert len({a["host"] for a in actors["actors"]}) == SHARDS


async def test_a_concerts_own_room_serves_through_both_gateways(apis: tuple[Api, Api]) -> None:
    """The room is an actor `room:<concertId>` on one shard like any other: tokens issued through
    one gateway work through the other, the start and the shuffle happen on the host, and
    leaving and WRONG_ROOM behave as in one process."""
    first, second = apis
    concert_id = await new_room(first, 4, batchSize=5, intervalSeconds=1.0)
    buyers = [await join_room((first, second)[n % 2], concert_id) for n in range(10)]
    assert {(await second.me(b))["status"] for b in buyers} == {"PRE_QUEUE"}
    await until_open(second, concert_id)
    shuffled = await ranks(first, buyers)
    assert sorted(shuffled) == list(range(1, 11))
    leaver = buyers[shuffled.index(10)]
    left = await second.delete("/api/queue/tokens/me", leaver)
    assert (left.status_code, left.json()["status"]) == (200, "LEFT")
    gone = await first.get("/api/queue/tokens/me", leaver)
    assert (gone.status_code, error_code(gone)) == (403, "TOKEN_LEFT")
    winner = buyers[shuffled.index(1)]
    await first.until_status(winner, "PROCESSING")
    other_id, (other_day,) = await first.new_concert()
    wrong = await second.hold(winner, other_id, other_day, 1)
    assert (wrong.status_code, error_code(wrong)) == (403, "WRONG_ROOM")
    held = await second.hold(winner, concert_id, DAY, 1)
    assert held.status_code == 201, held.text
    rooms = (await second.admin("GET", "/admin/rooms"))["rooms"]
    room = next(r for r in rooms if r["concertId"] == concert_id)
    assert room["left"] == 1 and room["admitted"] >= 5
