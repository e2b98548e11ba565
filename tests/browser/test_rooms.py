"""A concert's own on-sale in a real browser: the pre-queue, the start and its shuffle, the
admission; the wait counted down between pushes; leaving; the proof of work's progress; the
dashboard's Rooms section."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import Pages, Screenshots, Server, unique
from tests.browser.screens import BuyerScreen, Dashboard

DAY = "2031-06-01"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_on_sale(server: Server, starts_in: float, **on_sale: Any) -> str:
    concert_id = unique("onsale")
    server.admin(
        "POST",
        "/admin/concerts",
        {
            "concertId": concert_id,
            "title": "On-sale",
            "dates": [{"date": DAY, "seats": 20, "price": 10}],
            "onSale": {"startsAt": iso(time.time() + starts_in), **on_sale},
        },
    )
    return concert_id


def join_by_api(server: Server, concert_id: str) -> str:
    response = httpx.post(
        server.base_url + "/api/queue/tokens",
        json={"userId": unique("other"), "concertId": concert_id},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def token_view(server: Server, token: str) -> httpx.Response:
    return httpx.get(
        server.base_url + "/api/queue/tokens/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_a_buyer_waits_in_the_pre_queue_gets_a_drawn_place_at_the_start_and_is_admitted(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    concert_id = new_on_sale(server, 8, batchSize=3, intervalSeconds=2)
    others = [join_by_api(server, concert_id) for _ in range(5)]
    buyer = BuyerScreen(pages.open(f"{server.base_url}/?concert={concert_id}"))
    expect(buyer.page.locator("#onsale")).to_contain_text("The sale starts at")
    shots.take(buyer.page, "pre-queue-open")
    buyer.join(unique("early"))
    expect(buyer.waiting_view).to_be_visible()
    expect(buyer.page.locator("#prequeue-note")).to_be_visible()
    expect(buyer.rank).to_have_text("drawn at the start")
    expect(buyer.page.locator("#wait-countdown")).to_contain_text("The sale starts in")
    shots.take(buyer.page, "pre-queued")
    # The start: a place drawn among the six, pushed on the websocket.
    expect(buyer.rank).to_have_text(re.compile(r"^[1-6]$"), timeout=20_000)
    expect(buyer.page.locator("#prequeue-note")).to_be_hidden()
    shots.take(buyer.page, "place-drawn")
    ranks = sorted(token_view(server, t).json()["rank"] or 0 for t in others)
    assert len(set(ranks)) == 5
    buyer.wait_for_seat_picker()
    expect(buyer.page.get_by_label("Concert", exact=True)).to_have_value(concert_id)
    shots.take(buyer.page, "admitted")


def test_the_wait_counts_down_between_pushes_with_a_progress_bar(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    concert_id = new_on_sale(server, 0.5, batchSize=1, intervalSeconds=30)
    for _ in range(3):
        join_by_api(server, concert_id)
    buyer = BuyerScreen(pages.open(f"{server.base_url}/?concert={concert_id}"))
    buyer.join(unique("patient"))
    countdown = buyer.page.locator("#wait-countdown")
    expect(countdown).to_have_text(re.compile(r"^\d+:\d\d left$"))
    first = int(countdown.get_attribute("data-seconds") or 0)
    expect(countdown).not_to_have_attribute("data-seconds", str(first), timeout=5_000)
    later = int(countdown.get_attribute("data-seconds") or 0)
    assert 0 < later < first
    progress = buyer.page.locator("#wait-progress")
    expect(progress).to_be_visible()
    shots.take(buyer.page, "countdown")


def test_a_buyer_who_leaves_frees_the_place_for_those_behind(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    concert_id = new_on_sale(server, 0.5, batchSize=1, intervalSeconds=600)
    buyer = BuyerScreen(pages.open(f"{server.base_url}/?concert={concert_id}"))
    buyer.join(unique("leaver"))
    expect(buyer.rank).to_have_text("1")
    behind = join_by_api(server, concert_id)
    assert token_view(server, behind).json()["rank"] == 2
    token = buyer.page.evaluate("JSON.parse(sessionStorage.getItem('cq.buyer')).token")
    buyer.page.get_by_role("button", name="Leave the queue").click()
    expect(buyer.page.locator("#view-join")).to_be_visible()
    shots.take(buyer.page, "left")
    left = token_view(server, token)
    assert (left.status_code, left.json()["error"]["code"]) == (403, "TOKEN_LEFT")
    assert token_view(server, behind).json()["rank"] == 1


def test_the_proof_of_work_is_solved_in_a_worker_with_its_progress_shown(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    concert_id = new_on_sale(server, 60, proofOfWork=14)
    buyer = BuyerScreen(pages.open(f"{server.base_url}/?concert={concert_id}"))
    bar = buyer.page.locator("#pow-progress")
    buyer.join(unique("solver"))
    expect(buyer.page.locator("#pow")).to_be_visible()
    shots.take(buyer.page, "proof-of-work")
    expect(buyer.waiting_view).to_be_visible(timeout=60_000)
    assert bar.get_attribute("value") == "100"
    expect(buyer.page.locator("#pow-text")).to_have_text("Done.")
    expect(buyer.page.locator("#prequeue-note")).to_be_visible()


def test_the_dashboard_lists_every_room_with_its_figures_and_pauses_one(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    concert_id = new_on_sale(server, 0.5, batchSize=2, intervalSeconds=600)
    join_by_api(server, concert_id)
    dashboard = Dashboard(pages.open(server.base_url + "/admin"))
    dashboard.sign_in(server.admin_token)
    row = dashboard.page.locator(f'#rooms tr[data-room="{concert_id}"]')
    expect(row).to_be_visible()
    expect(dashboard.page.locator('#rooms tr[data-room="site-wide"]')).to_be_visible()
    expect(row.locator(".spark")).to_have_count(2)
    row.get_by_role("button", name=f"Pause {concert_id}").click()
    expect(row.locator(".badge")).to_have_text("paused")
    shots.take(dashboard.page, "rooms")
    row.get_by_role("button", name=f"Resume {concert_id}").click()
    expect(row.locator(".badge")).to_have_text("open")
