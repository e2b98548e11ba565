"""What the tests do on the buyer's page and the dashboard, in the words a person would use.

Locators go through labels and roles (what a screen reader announces), so these tests also pin
down that the controls are labelled.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect


class BuyerScreen:
    def __init__(self, page: Page) -> None:
        self.page = page

    # -- views --------------------------------------------------------------------------------

    @property
    def waiting_view(self) -> Locator:
        return self.page.locator("#view-waiting")

    @property
    def shop_view(self) -> Locator:
        return self.page.locator("#view-shop")

    @property
    def done_view(self) -> Locator:
        return self.page.locator("#view-done")

    @property
    def message(self) -> Locator:
        return self.page.get_by_role("alert")

    @property
    def rank(self) -> Locator:
        return self.page.get_by_test_id("rank")

    # -- steps --------------------------------------------------------------------------------

    def join(self, user_id: str) -> None:
        self.page.get_by_label("Your user id").fill(user_id)
        self.page.get_by_role("button", name="Join the queue").click()

    def wait_for_seat_picker(self) -> None:
        expect(self.shop_view).to_be_visible()
        expect(self.seat(1)).to_be_visible()

    @property
    def date_choice(self) -> Locator:
        return self.page.get_by_label("Date", exact=True)

    def seat(self, number: int) -> Locator:
        return self.page.locator(f'#seat-map [data-seat="{number}"]')

    def hold(self, number: int) -> None:
        self.seat(number).click()

    def click_seat_at_once(self, number: int) -> None:
        """Click the seat without waiting for it to look free: two of these race."""
        self.seat(number).dispatch_event("click")

    def release(self, number: int) -> None:
        self.page.get_by_role("button", name=f"Release seat {number}").click()

    def holds(self) -> Locator:
        return self.page.get_by_role("list", name="Seats held for you").get_by_role("listitem")

    def hold_of(self, number: int) -> Locator:
        return self.page.locator(f'#holds li[data-seat="{number}"]')

    def expect_mine(self, number: int) -> None:
        expect(self.seat(number)).to_have_attribute("data-mine", "true")
        expect(self.seat(number)).to_have_attribute("aria-pressed", "true")

    def expect_taken_by_someone_else(self, number: int) -> None:
        expect(self.seat(number)).to_have_attribute("data-mine", "false")
        expect(self.seat(number)).to_have_attribute("data-status", re.compile("HELD|CHECKOUT|SOLD"))

    def expect_available(self, number: int) -> None:
        expect(self.seat(number)).to_have_attribute("data-status", "AVAILABLE")
        expect(self.seat(number)).to_have_attribute("data-mine", "false")

    def add_money(self) -> None:
        self.page.get_by_role("button", name="Add money").click()

    @property
    def pay_button(self) -> Locator:
        return self.page.get_by_role("button", name=re.compile(r"^Pay"))

    @property
    def pay_reason(self) -> Locator:
        return self.page.locator("#pay-reason")

    def pay(self) -> None:
        self.pay_button.click()

    def my_tickets(self) -> Locator:
        return self.page.get_by_role("list", name="My tickets").get_by_role("listitem")

    def expect_my_tickets(self, seats: list[int], payment: str) -> None:
        """ "My tickets" lists these seats of the demo concert, each with its payment."""
        tickets = self.my_tickets()
        expect(tickets).to_have_count(len(seats))
        for ticket, seat in zip(tickets.all(), seats, strict=True):
            expect(ticket).to_contain_text("Aurora — live in concert")
            expect(ticket).to_contain_text("Main Hall")
            expect(ticket).to_contain_text(f"Seat {seat} · €120")
            expect(ticket).to_contain_text(f"Payment {payment}")

    def expect_no_sideways_scroll(self) -> None:
        expect_no_sideways_scroll(self.page)

    def mark_page(self) -> None:
        """Leave a mark in the page's memory: it is gone if the page reloads."""
        self.page.evaluate("window.__sameDocument = true")

    def expect_not_reloaded(self) -> None:
        assert self.page.evaluate("window.__sameDocument === true"), "the page reloaded"


class Dashboard:
    def __init__(self, page: Page) -> None:
        self.page = page

    def sign_in(self, token: str) -> None:
        self.page.get_by_label("Admin token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#dashboard")).to_be_visible()

    @property
    def queue_state(self) -> Locator:
        return self.page.locator("#queue-state")

    def stat(self, name: str) -> Locator:
        """The value shown under a statistic's name, e.g. stat("Waiting")."""
        return (
            self.page.locator("#queue-stats div")
            .filter(has=self.page.get_by_text(name, exact=True))
            .locator("dd")
        )

    def sales_stat(self, name: str) -> Locator:
        """The value shown under a figure of the Sales card, e.g. sales_stat("Seats sold")."""
        return (
            self.page.locator("#totals div")
            .filter(has=self.page.get_by_text(name, exact=True))
            .locator("dd")
        )

    def actor_row(self, key: str) -> Locator:
        return self.page.locator(f'#actors tr[data-actor="{key}"]')

    def seat_rows(self) -> Locator:
        return self.page.locator("#dates details[open] tbody tr")


def expect_no_sideways_scroll(page: Page) -> None:
    """Nothing on the page is wider than the viewport (the phone test's first rule)."""
    overflow = page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const wide = [...document.querySelectorAll("body *")]
                .filter((el) => el.getClientRects().length > 0)
                .filter((el) => el.getBoundingClientRect().right > width + 0.5)
                .filter((el) => !el.closest(".table-wrap"))
                .map((el) => el.id || el.className || el.tagName);
            return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
        }"""
    )
    assert overflow["scroll"] <= overflow["width"], overflow
