"""The operator's dashboard in a real browser against the real service."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import (
    PHONE,
    WIDE,
    Pages,
    Screenshots,
    Server,
    running_server,
    unique,
)
from tests.browser.screens import BuyerScreen, Dashboard, expect_no_sideways_scroll


def test_the_dashboard_pauses_admission_and_a_buyer_waits_until_it_resumes(
    queue_admin: Server, pages: Pages, shots: Screenshots
) -> None:
    dashboard = Dashboard(pages.open(queue_admin.base_url + "/admin", WIDE))
    dashboard.sign_in(queue_admin.admin_token)
    expect(dashboard.queue_state).to_have_text("running")
    expect(dashboard.actor_row("waiting-room")).to_be_visible()
    expect(dashboard.actor_row("waiting-room").locator("td").nth(2)).to_have_text(re.compile(r"\d"))
    # An embedded server has no cluster: neither its card nor the actors' Host column shows.
    expect(dashboard.page.locator("#cluster-card")).to_be_hidden()
    expect(dashboard.actor_row("waiting-room").locator("td.cluster-only")).to_be_hidden()

    dashboard.page.get_by_role("button", name="Pause admission").click()
    expect(dashboard.queue_state).to_have_text("paused")
    assert queue_admin.queue_state()["paused"] is True

    user = unique("paused")
    buyer = BuyerScreen(pages.open(queue_admin.base_url + "/"))
    buyer.join(user)
    expect(buyer.waiting_view).to_be_visible()
    expect(buyer.page.locator("#eta")).to_have_text(re.compile("paused"))
    expect(dashboard.stat("Waiting")).not_to_have_text("0")
    shots.take(dashboard.page, "paused")

    dashboard.page.get_by_role("button", name="Resume admission").click()
    expect(dashboard.queue_state).to_have_text("running")
    buyer.wait_for_seat_picker()

    # The operator sees the buyer's hold on the date's seat map, with its holder.
    buyer.hold(21)
    buyer.expect_mine(21)
    held = dashboard.seat_rows().filter(has_text=user)
    expect(held).to_have_count(1)
    expect(held).to_contain_text("21")
    expect(held).to_contain_text("held")
    shots.take(dashboard.page, "buyer-hold-visible")
    shots.take(dashboard.page, "buyer-hold-visible-top", full_page=False)


def test_the_dashboard_changes_the_batch_size(
    queue_admin: Server, pages: Pages, shots: Screenshots
) -> None:
    dashboard = Dashboard(pages.open(queue_admin.base_url + "/admin"))
    dashboard.sign_in(queue_admin.admin_token)
    expect(dashboard.stat("Batch size")).to_have_text("100")
    dashboard.page.get_by_label("Batch size").fill("25")
    dashboard.page.get_by_role("button", name="Apply settings").click()
    expect(dashboard.stat("Batch size")).to_have_text("25")
    assert queue_admin.queue_state()["batchSize"] == 25
    shots.take(dashboard.page, "batch-size-25")


def test_the_dashboard_refuses_a_wrong_admin_token(server: Server, pages: Pages) -> None:
    dashboard = Dashboard(pages.open(server.base_url + "/admin"))
    dashboard.page.get_by_label("Admin token").fill("not-the-token")
    dashboard.page.get_by_role("button", name="Sign in").click()
    expect(dashboard.page.get_by_role("alert")).to_contain_text("admin token was refused")
    expect(dashboard.page.get_by_label("Admin token")).to_be_visible()
    expect(dashboard.page.locator("#dashboard")).to_be_hidden()


def _rush(base_url: str, buyers: int) -> list[str]:
    """A small on-sale through the API: buyers join, are admitted, hold a seat each, and all
    but one pay (that one pays with too little money: a refusal, not a failure). The payment
    ids."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        tokens = [
            http.post("/api/queue/tokens", json={"userId": unique(f"rush{n}")}).json()["token"]
            for n in range(buyers)
        ]
        headers = [{"Authorization": f"Bearer {token}"} for token in tokens]
        for header in headers:
            deadline = time.monotonic() + 10
            while http.get("/api/queue/tokens/me", headers=header).json()["status"] != "PROCESSING":
                assert time.monotonic() < deadline, "a buyer of the rush was never admitted"
                time.sleep(0.1)
        concert = http.get("/api/concerts", headers=headers[0]).json()[0]["concertId"]
        day = http.get(f"/api/concerts/{concert}/dates", headers=headers[0]).json()[-1]["date"]
        payments = []
        for n, header in enumerate(headers):
            body = {"concertId": concert, "date": day, "seat": n + 1}
            held = http.post("/api/reservations", json=body, headers=header).json()
            if n:
                http.post("/api/balance/charge", json={"amount": 500}, headers=header)
            paid = http.post(
                "/api/payments", json={"reservationIds": [held["reservationId"]]}, headers=header
            )
            assert paid.status_code == (201 if n else 402)
            if n:
                payments.append(paid.json()["paymentId"])
        return payments


def test_the_dashboard_charts_a_small_rush_from_the_servers_own_figures(
    tmp_path: Path, pages: Pages, shots: Screenshots
) -> None:
    with running_server(tmp_path / "charts", HISTORY_SAMPLE_SECONDS="0.5") as server:
        dashboard = Dashboard(pages.open(server.base_url + "/admin", WIDE))
        dashboard.sign_in(server.admin_token)
        payments = _rush(server.base_url, buyers=12)
        charts = dashboard.page.locator("#charts figure")
        expect(charts).to_have_count(5)
        for name in ("admissionsPerMinute", "holdsPerSecond", "salesPerMinute", "holdP99Ms"):
            chart = dashboard.page.locator(f'#charts figure[data-chart="{name}"]')
            # Drawn from real figures: a line (or a point) whose peak is above zero.
            expect(chart).to_have_attribute("data-peak", re.compile(r"^(?!0$)\d"))
            expect(chart.locator("polyline, circle")).not_to_have_count(0)
            expect(chart.get_by_role("img")).to_have_attribute("aria-label", re.compile("now"))
        expect(dashboard.sales_stat("Payments refused (buyers' mistakes)")).to_have_text("1")
        expect(dashboard.sales_stat("Payments failed (ours)")).to_have_text("0")
        expect(dashboard.stat("Admission rate, set")).to_have_text("30,000/min")
        shots.take(dashboard.page, "charts-after-a-rush")

        # Sold seats name their payment in a column of its own.
        paid_row = dashboard.seat_rows().filter(has_text=payments[0])
        expect(paid_row.locator("td.payment")).to_have_text(payments[0])
        expect(paid_row).to_contain_text("sold")

        # The 32 idle wallet and checkout shards are one row, until asked for.
        idle = dashboard.actor_row("idle-shards")
        expect(idle).to_contain_text("idle shards")
        dashboard.page.get_by_label("Show idle shards").check()
        expect(idle).to_have_count(0)
        expect(dashboard.page.locator('#actors tr[data-actor^="wallet:"]')).not_to_have_count(0)
        dashboard.page.get_by_label("Filter by key").fill("date:")
        rows = dashboard.page.locator("#actors tr")
        expect(rows.first).to_have_attribute("data-actor", re.compile("^date:"))
        for key in rows.evaluate_all("(rows) => rows.map((r) => r.dataset.actor)"):
            assert key.startswith("date:"), key
        dashboard.page.get_by_role("button", name="Processed", exact=True).click()
        header = dashboard.page.locator("#actors-head th").nth(4)  # after the Host column
        expect(header).to_have_attribute("aria-sort", re.compile("ascending|descending"))
        shots.take(dashboard.page, "actors-filtered-and-sorted")


def test_on_a_phone_the_dashboard_fits_the_screen(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    dashboard = Dashboard(pages.open(server.base_url + "/admin", PHONE))
    dashboard.sign_in(server.admin_token)
    expect(dashboard.actor_row("waiting-room")).to_be_visible()
    expect(dashboard.page.locator("#dates details").first).to_be_visible()
    expect(dashboard.page.locator("#charts figure")).to_have_count(5)
    expect_no_sideways_scroll(dashboard.page)
    shots.take(dashboard.page, "phone-dashboard")
