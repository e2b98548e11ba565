"""The buyer's page in a real browser against the real service: queue, seats, holds, payment."""

from __future__ import annotations

import re
import time

from playwright.sync_api import APIResponse, Route, expect

from tests.browser.conftest import PHONE, SHORT_HOLD_SECONDS, Pages, Screenshots, Server, unique
from tests.browser.screens import BuyerScreen


def test_a_buyer_joins_holds_two_seats_charges_pays_and_sees_the_confirmation(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    buyer = BuyerScreen(pages.open(server.base_url + "/"))
    shots.take(buyer.page, "join")
    buyer.join(unique("flow"))
    buyer.wait_for_seat_picker()
    expect(buyer.date_choice).not_to_have_value("")
    shots.take(buyer.page, "seat-picker")

    buyer.hold(1)
    buyer.expect_mine(1)
    # The second seat with the keyboard only: arrows move along the row, Enter holds.
    buyer.seat(1).press("ArrowRight")
    expect(buyer.seat(2)).to_be_focused()
    buyer.page.keyboard.press("Enter")
    buyer.expect_mine(2)
    expect(buyer.holds()).to_have_count(2)
    expect(buyer.hold_of(1).locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d left$"))
    shots.take(buyer.page, "two-seats-held")

    # The queue token and the holds survive a reload of the tab.
    buyer.page.reload()
    buyer.wait_for_seat_picker()
    expect(buyer.holds()).to_have_count(2)
    buyer.expect_mine(1)
    buyer.expect_mine(2)

    # With too little money Pay is disabled, saying what is missing, in the currency.
    expect(buyer.pay_button).to_be_disabled()
    expect(buyer.pay_reason).to_have_text("Add €240 to your balance to pay.")
    expect(buyer.pay_button).to_have_text("Pay €240 for 2 seats")
    expect(buyer.holds()).to_have_count(2)
    shots.take(buyer.page, "pay-disabled-balance-short")

    total = buyer.page.locator("#total").inner_text()
    assert total == "€240"
    expect(buyer.page.get_by_label("Add to balance")).to_have_value("240")
    buyer.add_money()
    expect(buyer.page.locator("#balance")).to_have_text(total)
    expect(buyer.pay_button).to_be_enabled()
    expect(buyer.pay_reason).to_have_text("")
    buyer.pay()

    expect(buyer.done_view).to_be_visible()
    tickets = buyer.page.get_by_role("list", name="Seats bought").get_by_role("listitem")
    expect(tickets).to_have_text(["Seat 1", "Seat 2"])
    expect(buyer.page.locator("#done-amount")).to_have_text(total)
    payment = buyer.page.locator("#done-payment").inner_text()
    buyer.expect_my_tickets([1, 2], payment)
    shots.take(buyer.page, "confirmation")

    buyer.page.reload()
    expect(buyer.done_view).to_be_visible()
    expect(tickets).to_have_text(["Seat 1", "Seat 2"])

    # A new tab (no sessionStorage) reads the tickets from the server with the used token.
    other_tab = BuyerScreen(buyer.page.context.new_page())
    other_tab.page.goto(server.base_url + "/")
    other_tab.expect_my_tickets([1, 2], payment)
    expect(other_tab.page.get_by_label("Your user id")).to_be_visible()
    shots.take(other_tab.page, "my-tickets-in-a-new-tab")


def test_two_buyers_race_for_one_seat_and_the_loser_sees_it_taken_without_reloading(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    first = BuyerScreen(pages.open(server.base_url + "/"))
    second = BuyerScreen(pages.open(server.base_url + "/"))
    first.join(unique("racer-a"))
    second.join(unique("racer-b"))
    first.wait_for_seat_picker()
    second.wait_for_seat_picker()
    assert first.date_choice.input_value() == second.date_choice.input_value()
    first.mark_page()
    second.mark_page()

    seat = 11
    first.click_seat_at_once(seat)
    second.click_seat_at_once(seat)

    for screen in (first, second):
        expect(screen.seat(seat)).to_have_attribute("data-status", "HELD")

    # The map may show the seat HELD (pushed over the websocket) a moment before the winner's
    # own answer marks it theirs: wait for that answer, then check nobody else got it.
    def winners() -> list[BuyerScreen]:
        return [s for s in (first, second) if s.seat(seat).get_attribute("data-mine") == "true"]

    deadline = time.monotonic() + 10
    while not winners():
        assert time.monotonic() < deadline, "neither buyer was told the seat is theirs"
        first.page.wait_for_timeout(50)
    (winner,) = winners()  # exactly one buyer gets the seat
    loser = second if winner is first else first
    winner.expect_mine(seat)
    expect(winner.holds()).to_have_count(1)
    loser.expect_taken_by_someone_else(seat)
    expect(loser.holds()).to_have_count(0)
    expect(loser.message).to_contain_text(f"Seat {seat}")
    shots.take(winner.page, "winner")
    shots.take(loser.page, "loser")

    # The winner lets go: the loser's map turns it available by itself, and now it is theirs.
    winner.release(seat)
    loser.expect_available(seat)
    expect(loser.message).to_be_hidden()  # "seat 11 was taken" is no longer true
    loser.hold(seat)
    loser.expect_mine(seat)
    winner.expect_taken_by_someone_else(seat)
    first.expect_not_reloaded()
    second.expect_not_reloaded()


def test_an_expired_hold_leaves_the_screen_and_the_seat_frees_up_for_the_other_buyer(
    short_hold_server: Server, pages: Pages, shots: Screenshots
) -> None:
    holder = BuyerScreen(pages.open(short_hold_server.base_url + "/"))
    watcher = BuyerScreen(pages.open(short_hold_server.base_url + "/"))
    holder.join(unique("holder"))
    watcher.join(unique("watcher"))
    holder.wait_for_seat_picker()
    watcher.wait_for_seat_picker()
    watcher.mark_page()

    seat = 5
    holder.hold(seat)
    holder.expect_mine(seat)
    expect(holder.hold_of(seat).locator(".countdown")).to_have_text(re.compile(r"^0:0\d left$"))
    watcher.expect_taken_by_someone_else(seat)
    shots.take(holder.page, "hold-counting-down")

    expiry_ms = (SHORT_HOLD_SECONDS + 6) * 1000
    expect(holder.holds()).to_have_count(0, timeout=expiry_ms)
    expect(holder.message).to_contain_text(f"hold on seat {seat} expired")
    holder.expect_available(seat)
    watcher.expect_available(seat)
    shots.take(holder.page, "hold-expired")
    shots.take(watcher.page, "seat-free-again")

    watcher.hold(seat)
    watcher.expect_mine(seat)
    watcher.expect_not_reloaded()


def test_a_waiting_buyer_moves_up_and_reaches_the_seat_picker_when_admitted(
    queue_admin: Server, pages: Pages, shots: Screenshots
) -> None:
    queue_admin.admin("PATCH", "/admin/queue", {"batchSize": 1, "intervalSeconds": 3})
    queue_admin.admin("POST", "/admin/queue/pause")
    ahead = BuyerScreen(pages.open(queue_admin.base_url + "/", PHONE))
    behind = BuyerScreen(pages.open(queue_admin.base_url + "/", PHONE))
    ahead.join(unique("ahead"))
    expect(ahead.rank).to_have_text("1")
    behind.join(unique("behind"))
    expect(behind.waiting_view).to_be_visible()
    expect(behind.rank).to_have_text("2")
    expect(behind.page.locator("#eta")).to_have_text(re.compile("paused"))
    behind.mark_page()
    shots.take(behind.page, "waiting-second")

    queue_admin.admin("POST", "/admin/queue/resume")
    ahead.wait_for_seat_picker()
    expect(behind.rank).to_have_text("1")
    expect(behind.waiting_view).to_be_visible()
    shots.take(behind.page, "waiting-first")
    behind.wait_for_seat_picker()
    behind.expect_not_reloaded()
    shots.take(behind.page, "admitted")


def test_a_status_reply_older_than_the_admission_does_not_send_the_buyer_back_to_the_queue(
    queue_admin: Server, pages: Pages
) -> None:
    # The page asks for its status when its socket opens. Hold that reply (WAITING) back until
    # the admission was pushed, then let it through: the page must stay in the seat picker.
    queue_admin.admin("POST", "/admin/queue/pause")
    buyer = BuyerScreen(pages.open(queue_admin.base_url + "/"))
    held_back: list[tuple[Route, APIResponse]] = []

    def hold_back(route: Route) -> None:
        if held_back:
            route.fallback()  # later polls go through: only the first reply is late
        else:
            held_back.append((route, route.fetch()))

    buyer.page.route("**/api/queue/tokens/me", hold_back)
    buyer.join(unique("stale-reply"))
    expect(buyer.waiting_view).to_be_visible()
    buyer.page.wait_for_timeout(500)  # lets the held-back request reach the handler
    assert held_back, "the page did not ask for its status when its socket opened"
    assert held_back[0][1].json()["status"] == "WAITING"

    queue_admin.admin("POST", "/admin/queue/resume")
    buyer.wait_for_seat_picker()
    route, stale = held_back[0]
    route.fulfill(response=stale)
    buyer.page.wait_for_timeout(500)
    buyer.wait_for_seat_picker()
    buyer.hold(12)
    buyer.expect_mine(12)


def test_a_buyer_without_a_websocket_is_admitted_and_sees_seats_change_by_polling(
    queue_admin: Server, pages: Pages, shots: Screenshots
) -> None:
    queue_admin.admin("POST", "/admin/queue/pause")
    offline = BuyerScreen(pages.open(queue_admin.base_url + "/", refused_sockets=1_000_000))
    offline.join(unique("no-socket"))
    expect(offline.waiting_view).to_be_visible()
    expect(offline.page.locator("#conn")).to_have_text(re.compile("reconnecting"))
    offline.mark_page()
    shots.take(offline.page, "waiting-without-socket")

    queue_admin.admin("POST", "/admin/queue/resume")
    offline.wait_for_seat_picker()

    other = BuyerScreen(pages.open(queue_admin.base_url + "/"))
    other.join(unique("with-socket"))
    other.wait_for_seat_picker()
    seat = 31
    other.hold(seat)
    other.expect_mine(seat)
    offline.expect_taken_by_someone_else(seat)
    offline.expect_not_reloaded()
    shots.take(offline.page, "seat-taken-seen-by-polling")


def test_a_buyer_whose_shopping_window_runs_out_is_told_so_and_can_join_again(
    queue_admin: Server, pages: Pages, shots: Screenshots
) -> None:
    window_seconds = 3
    queue_admin.admin("PATCH", "/admin/queue", {"activeTtlSeconds": window_seconds})
    buyer = BuyerScreen(pages.open(queue_admin.base_url + "/"))
    buyer.join(unique("slow"))
    buyer.wait_for_seat_picker()
    expect(buyer.page.locator("#window-left")).to_have_text(re.compile(r"^0:0[0-3]$"))
    buyer.mark_page()

    ended = buyer.page.locator("#view-ended")
    expect(ended).to_be_visible(timeout=(window_seconds + 6) * 1000)
    expect(ended).to_contain_text("Your shopping time ran out")
    buyer.expect_not_reloaded()
    shots.take(buyer.page, "window-ran-out")

    queue_admin.admin("PATCH", "/admin/queue", {"activeTtlSeconds": 600})
    buyer.page.get_by_role("button", name="Join the queue again").click()
    buyer.wait_for_seat_picker()


def test_a_dropped_websocket_reconnects_by_itself_and_pushes_again(
    server: Server, pages: Pages
) -> None:
    buyer = BuyerScreen(pages.open(server.base_url + "/", refused_sockets=2))
    other = BuyerScreen(pages.open(server.base_url + "/"))
    buyer.join(unique("reconnects"))
    other.join(unique("pusher"))
    buyer.wait_for_seat_picker()
    other.wait_for_seat_picker()
    expect(buyer.page.locator("#conn")).to_have_text("live")
    buyer.mark_page()

    # Once live the page stops polling: this change can only come through the new socket.
    seat = 41
    other.hold(seat)
    expect(buyer.seat(seat)).to_have_attribute("data-status", "HELD", timeout=1_500)
    buyer.expect_not_reloaded()


def test_on_a_phone_the_buyer_page_fits_and_seats_are_big_enough_to_touch(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    buyer = BuyerScreen(pages.open(server.base_url + "/", PHONE))
    buyer.expect_no_sideways_scroll()
    buyer.join(unique("phone"))
    buyer.wait_for_seat_picker()
    buyer.expect_no_sideways_scroll()
    for number in (1, 25, 50):
        box = buyer.seat(number).bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44, (number, box)
    # The date picker shows its whole choice inside the screen.
    date_box = buyer.date_choice.bounding_box()
    assert date_box is not None and date_box["x"] + date_box["width"] <= PHONE["width"]
    shots.take(buyer.page, "phone-seat-picker")

    seat = 45
    buyer.hold(seat)
    buyer.expect_mine(seat)
    # The check mark sits in the corner, clear of the seat's number.
    number_fits = buyer.seat(seat).evaluate(
        """(el) => {
            const text = document.createRange();
            text.selectNodeContents(el.firstChild);
            const digits = text.getBoundingClientRect();
            const box = el.getBoundingClientRect();
            const mark = getComputedStyle(el, "::after");
            const markLeft = box.right - parseFloat(mark.right) - parseFloat(mark.width);
            const markBottom = box.top + parseFloat(mark.top) + parseFloat(mark.height);
            return markLeft >= digits.right || markBottom <= digits.top;
        }"""
    )
    assert number_fits, "the check mark covers the seat number"
    buyer.expect_no_sideways_scroll()
    shots.take(buyer.page, "phone-seat-held")

    buyer.page.get_by_label("Add to balance").fill("120")
    buyer.add_money()
    expect(buyer.pay_button).to_be_enabled()
    buyer.pay()
    expect(buyer.done_view).to_be_visible()
    payment = buyer.page.locator("#done-payment").inner_text()
    buyer.expect_my_tickets([seat], payment)
    buyer.expect_no_sideways_scroll()
    shots.take(buyer.page, "phone-my-tickets")


def test_held_and_being_paid_seats_differ_by_more_than_colour(
    server: Server, pages: Pages, shots: Screenshots
) -> None:
    buyer = BuyerScreen(pages.open(server.base_url + "/"))
    buyer.join(unique("marks"))
    buyer.wait_for_seat_picker()
    # Draw the legend's seats: the marks of "held" and "being paid" are other shapes.
    legend = buyer.page.get_by_role("list", name="Legend")
    marks = legend.locator(".seat").evaluate_all(
        """(seats) => seats.map((el) => {
            const after = getComputedStyle(el, "::after");
            return [el.dataset.status, el.dataset.mine, after.borderRadius, after.borderTopWidth,
                    getComputedStyle(el).backgroundImage !== "none"];
        })"""
    )
    held = next(m for m in marks if m[0] == "HELD")
    paying = next(m for m in marks if m[0] == "CHECKOUT")
    assert held[2:] != paying[2:], marks
    assert paying[4] and not held[4]  # stripes for a seat being paid
    expect(legend).to_contain_text("held (ring)")
    expect(legend).to_contain_text("being paid (stripes)")
    shots.take(buyer.page, "legend")
