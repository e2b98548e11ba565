"""The operator's dashboard in a real browser against the real service."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import WIDE, Pages, Screenshots, Server, unique
from tests.browser.screens import BuyerScreen, Dashboard


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
