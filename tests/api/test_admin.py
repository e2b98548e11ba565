"""The admin API: its token, actor state, live queue settings, catalog creation, metrics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.client import Api, bearer, error_code, unique
from tests.api.server import ADMIN_TOKEN
from web.schemas import ActorDetailOut, ActorsOut, AdminConcertOut, QueueSettingsOut

pytestmark = pytest.mark.anyio

ADMIN_ROUTES = [
    ("GET", "/admin/actors"),
    ("GET", "/admin/actors/waiting-room"),
    ("POST", "/admin/queue/pause"),
    ("POST", "/admin/queue/resume"),
    ("PATCH", "/admin/queue"),
    ("POST", "/admin/concerts"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_need_the_admin_token(api: Api, method: str, path: str) -> None:
    user = await api.admitted()
    missing = await api.http.request(method, api.url + path)
    assert (missing.status_code, error_code(missing)) == (401, "TOKEN_MISSING")
    queue_token = await api.http.request(method, api.url + path, headers=user.headers)
    assert (queue_token.status_code, error_code(queue_token)) == (401, "TOKEN_INVALID")


async def test_actors_lists_every_actor_with_stats_and_totals(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert(price=50)
    await api.hold(user, concert_id, day, 1)
    await api.charge(user, 80)
    listing = ActorsOut.model_validate(await api.admin("GET", "/admin/actors"))
    kinds = {actor.kind for actor in listing.actors}
    assert kinds == {"waiting-room", "date", "wallet", "checkout"}
    date_actor = next(a for a in listing.actors if a.key == f"date:{concert_id}:{day}")
    assert date_actor.processed >= 1 and date_actor.state["held"] == 1
    assert listing.totals.held >= 1 and listing.totals.charged >= 80
    assert listing.totals.balances == listing.totals.charged - listing.totals.debited
    assert listing.journal is not None and listing.journal.commits >= 1


async def test_a_date_actor_shows_its_seat_map_with_holders(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert(seats=5)
    hold = (await api.hold(user, concert_id, day, 2)).json()
    detail = ActorDetailOut.model_validate(
        await api.admin("GET", f"/admin/actors/date:{concert_id}:{day}")
    )
    assert detail.seats is not None and len(detail.seats) == 5
    seat = detail.seats[1]
    assert (seat.number, seat.status, seat.holder) == (2, "HELD", user.user_id)
    assert seat.reservation_id == hold["reservationId"]
    assert seat.expires_at == hold["expiresAt"]
    assert detail.mailbox_depth == 0 and detail.latency_p99_ms >= 0


async def test_wallet_checkout_and_room_actors_show_their_state(api: Api) -> None:
    user = await api.admitted()
    await api.charge(user, 33)
    listing = await api.admin("GET", "/admin/actors")
    wallets = [a["key"] for a in listing["actors"] if a["kind"] == "wallet"]
    balances: dict[str, int] = {}
    for key in wallets:
        detail = ActorDetailOut.model_validate(await api.admin("GET", f"/admin/actors/{key}"))
        assert detail.balances is not None
        balances |= detail.balances
    assert balances[user.user_id] == 33
    checkout = await api.admin("GET", "/admin/actors/checkout:0")
    assert isinstance(checkout["payments"], list)
    room = await api.admin("GET", "/admin/actors/waiting-room")
    assert QueueSettingsOut.model_validate(room["settings"]).batch_size == 100
    missing = await api.http.get(api.url + "/admin/actors/nope", headers=bearer(ADMIN_TOKEN))
    assert (missing.status_code, error_code(missing)) == (404, "NOT_FOUND")


async def test_queue_can_be_paused_resumed_and_reconfigured_live(api: Api) -> None:
    paused = QueueSettingsOut.model_validate(await api.admin("POST", "/admin/queue/pause"))
    try:
        assert paused.paused
        user = await api.waiting_user()
        assert (await api.me(user))["etaSeconds"] is None
        changed = await api.admin(
            "PATCH", "/admin/queue", {"maxActive": 100_000, "activeTtlSeconds": 900}
        )
        assert changed["maxActive"] == 100_000 and changed["activeTtlSeconds"] == 900
        assert changed["batchSize"] == 100 and changed["paused"] is True
    finally:
        resumed = await api.admin("POST", "/admin/queue/resume")
        restored = await api.admin(
            "PATCH", "/admin/queue", {"maxActive": None, "activeTtlSeconds": 600}
        )
    assert resumed["paused"] is False
    assert restored["maxActive"] is None
    await api.until_status(user, "PROCESSING")


@pytest.mark.parametrize(
    "body",
    [
        {"batchSize": 0},
        {"batchSize": "5"},
        {"batchSize": None},
        {"intervalSeconds": 0},
        {"maxActive": 0},
        {"maxActive": 2**64},  # past what the journal can keep
        {"paused": True},
    ],
)
async def test_queue_settings_are_validated(api: Api, body: dict[str, Any]) -> None:
    url = api.url + "/admin/queue"
    response = await api.http.patch(url, json=body, headers=bearer(ADMIN_TOKEN))
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")


async def test_a_new_concert_goes_on_sale_at_once(api: Api) -> None:
    user = await api.admitted()
    concert_id = unique("tour")
    body = {
        "concertId": concert_id,
        "title": "Tour",
        "venue": "Arena",
        "dates": [
            {"date": "2031-06-01", "price": 40},
            {"date": "2031-06-02", "seats": 3, "price": 45},
        ],
    }
    created = AdminConcertOut.model_validate(await api.admin("POST", "/admin/concerts", body))
    assert [(d.date, d.seats, d.price) for d in created.dates] == [
        ("2031-06-01", 50, 40),
        ("2031-06-02", 3, 45),
    ]
    dates = (await api.get(f"/api/concerts/{concert_id}/dates", user)).json()
    assert [d["date"] for d in dates] == ["2031-06-01", "2031-06-02"]
    assert (await api.hold(user, concert_id, "2031-06-02", 3)).status_code == 201

    more = {**body, "dates": [{"date": "2031-06-03", "price": 40}]}
    extended = await api.admin("POST", "/admin/concerts", more)
    assert [d["date"] for d in extended["dates"]] == ["2031-06-01", "2031-06-02", "2031-06-03"]
    changed = {**body, "dates": [{"date": "2031-06-02", "seats": 10, "price": 45}]}
    refused = await api.http.post(
        api.url + "/admin/concerts", json=changed, headers=bearer(ADMIN_TOKEN)
    )
    assert (refused.status_code, error_code(refused)) == (409, "DATE_ON_SALE")


@pytest.mark.parametrize(
    "body",
    [
        {"concertId": "has space", "title": "T", "dates": [{"date": "2031-01-01", "price": 1}]},
        {"concertId": "ok", "title": "", "dates": [{"date": "2031-01-01", "price": 1}]},
        {"concertId": "ok", "title": "T", "dates": []},
        {"concertId": "ok", "title": "T", "dates": [{"date": "2031-13-01", "price": 1}]},
        {"concertId": "ok", "title": "T", "dates": [{"date": "2031-01-01", "price": -1}]},
        {"concertId": "ok", "title": "T", "dates": [{"date": "2031-01-01", "price": 1, "x": 1}]},
        # 11 dates of 100,000 seats: each date is in bounds, together they are too many.
        {
            "concertId": "ok",
            "title": "T",
            "dates": [
                {"date": f"2031-01-{day:02d}", "seats": 100_000, "price": 1} for day in range(1, 12)
            ],
        },
    ],
)
async def test_concert_bodies_are_validated(api: Api, body: dict[str, Any]) -> None:
    response = await api.http.post(
        api.url + "/admin/concerts", json=body, headers=bearer(ADMIN_TOKEN)
    )
    assert (response.status_code, error_code(response)) == (422, "VALIDATION_ERROR")


async def test_metrics_count_requests_holds_sales_and_connections(api: Api) -> None:
    user = await api.admitted()
    concert_id, (day,) = await api.new_concert()
    rid = (await api.hold(user, concert_id, day, 1)).json()["reservationId"]
    await api.charge(user, 1000)
    await api.get(f"/api/concerts/{concert_id}/dates/{day}/seats", user)
    await api.pay(user, rid)
    await api.get("/api/nothing-here")
    response = await api.http.get(api.url + "/metrics", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    hold_route = (
        'concert_queue_http_requests_total{method="POST",route="/api/reservations",status="201"}'
    )
    assert samples[hold_route] >= 1
    # Routes with path parameters and unknown paths take Starlette's own way; counted alike.
    seats_route = '{method="GET",route="/api/concerts/{concertId}/dates/{date}/seats",status="200"}'
    assert samples["concert_queue_http_requests_total" + seats_route] >= 1
    unmatched = '{method="GET",route="unmatched",status="404"}'
    assert samples["concert_queue_http_requests_total" + unmatched] >= 1
    assert samples["concert_queue_seat_holds_total"] >= 1
    assert samples["concert_queue_seats_sold_total"] >= 1
    assert samples["concert_queue_queue_admissions_total"] >= 1
    assert 'concert_queue_actor_mailbox_depth{actor="waiting-room"}' in samples
    assert 'concert_queue_actor_turn_latency_seconds{actor="waiting-room",quantile="0.99"}' in (
        samples
    )
    assert "concert_queue_queue_waiting" in samples
    assert "concert_queue_websocket_connections" in samples
    assert "concert_queue_hold_expiries_total" in samples
    assert samples['concert_queue_journal_total{what="events"}'] >= 4  # join, hold, charge, ...
    assert samples['concert_queue_journal_total{what="failures"}'] == 0
