"""The operator's dashboard of a cluster, in Debian's chromium: its shards, gateways and hosts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.api.server import ADMIN_TOKEN
from tests.browser.conftest import LAUNCH_ARGS, PHONE, STEP_TIMEOUT_MS, WIDE, Pages, Screenshots
from tests.browser.screens import Dashboard
from tests.cluster.conftest import GATEWAYS, SHARDS, Cluster


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """This module's own browser: Playwright's sync API keeps an event loop running in this
    thread while it is open, and the package's async tests after this module (the cluster
    faults) could not start theirs ("another loop is running") under the browser package's
    fixture, which lives until the end of the package."""
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


def test_the_dashboard_shows_each_shard_its_host_and_each_gateway(
    cluster: Cluster, pages: Pages, shots: Screenshots
) -> None:
    for viewport, name in ((WIDE, "desktop"), (PHONE, "phone")):
        dashboard = Dashboard(pages.open(cluster.gateways[0].url + "/admin", viewport))
        dashboard.sign_in(ADMIN_TOKEN)
        card = dashboard.page.locator("#cluster-card")
        expect(card).to_be_visible()
        expect(dashboard.page.locator("#cluster-summary")).to_have_text(
            f"{SHARDS} shards on 1 node, {GATEWAYS} gateways; all serving"
        )
        shards = dashboard.page.locator("#cluster-shards tr")
        expect(shards).to_have_count(SHARDS)
        for index in range(SHARDS):
            row = shards.nth(index)
            expect(row.locator("th")).to_have_text(f"shard {index}")
            expect(row.locator("td").nth(0)).to_have_text(re.compile(rf"^shard-{index}@"))
            expect(row.locator("td").nth(1)).to_have_text("serving")
        expect(dashboard.page.locator("#cluster-gateways tr")).to_have_count(GATEWAYS)
        # Every actor row names the host that runs it.
        host = dashboard.actor_row("waiting-room").locator("td.cluster-only")
        expect(host).to_be_visible()
        expect(host).to_have_text(re.compile(r"^shard-\d+@"))
        card.scroll_into_view_if_needed()
        shots.take(dashboard.page, f"cluster-{name}")
        width = dashboard.page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"the {name} page scrolls sideways: {width} px"
