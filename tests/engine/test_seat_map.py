"""The seat map's rules as plain Python: no event loop, no actor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.seat_map import (
    AVAILABLE,
    CHECKOUT,
    HELD,
    SOLD,
    HoldExpired,
    SeatHeld,
    SeatMap,
    SeatsUnlocked,
    parse_reservation_id,
)
from engine.errors import Refused
from engine.events import Event

NOW = 1_000.0


def seat_map(seats: int = 10, max_holds: int = 2) -> SeatMap:
    return SeatMap("c1", "2027-01-15", seats, 100, hold_seconds=300, max_holds_per_user=max_holds)


def run(m: SeatMap, events: list[Event]) -> list[Event]:
    for e in events:
        m.apply(e)
    return events


def hold(m: SeatMap, user: str, seat: int, now: float = NOW) -> str:
    events = run(m, m.hold(user, seat, now))
    held = [e for e in events if isinstance(e, SeatHeld)]
    return held[-1].reservation_id


def refusal(call: object) -> str:
    assert callable(call)
    with pytest.raises(Refused) as refused:
        call()
    return refused.value.code


def test_hold_marks_the_seat_held_until_hold_seconds_later() -> None:
    m = seat_map()
    rid = hold(m, "ann", 3)
    seat = m.seats[2]
    assert (seat.status, seat.user_id, seat.until) == (HELD, "ann", NOW + 300)
    assert parse_reservation_id(rid) == ("c1", "2027-01-15", 3)
    assert m.next_deadline() == NOW + 300


def test_second_hold_on_same_seat_is_refused() -> None:
    m = seat_map()
    hold(m, "ann", 3)
    assert refusal(lambda: m.hold("bob", 3, NOW)) == "SEAT_TAKEN"


def test_holding_your_own_seat_again_changes_nothing() -> None:
    m = seat_map()
    hold(m, "ann", 3)
    assert m.hold("ann", 3, NOW + 1) == []


def test_a_seat_outside_the_map_is_not_found() -> None:
    m = seat_map(seats=10)
    assert refusal(lambda: m.hold("ann", 0, NOW)) == "NOT_FOUND"
    assert refusal(lambda: m.hold("ann", 11, NOW)) == "NOT_FOUND"


def test_holds_per_user_are_capped() -> None:
    m = seat_map(max_holds=2)
    hold(m, "ann", 1)
    hold(m, "ann", 2)
    assert refusal(lambda: m.hold("ann", 3, NOW)) == "HOLD_LIMIT"
    hold(m, "bob", 3)


def test_hold_is_still_live_one_instant_before_its_deadline() -> None:
    m = seat_map()
    hold(m, "ann", 1)
    assert m.expire_due(NOW + 299.999) == []


def test_hold_expires_exactly_at_its_deadline() -> None:
    m = seat_map()
    rid = hold(m, "ann", 1)
    events = run(m, m.expire_due(NOW + 300))
    assert events == [HoldExpired(1, rid, "ann")]
    assert m.seats[0].status == AVAILABLE
    assert m.next_deadline() is None


def test_a_lapsed_hold_not_yet_expired_does_not_block_another_buyer() -> None:
    m = seat_map()
    hold(m, "ann", 1)
    rid = hold(m, "bob", 1, NOW + 300)
    assert m.seats[0].user_id == "bob"
    assert m.seats[0].reservation_id == rid


def test_release_frees_the_seat_and_only_the_owner_may_release() -> None:
    m = seat_map()
    rid = hold(m, "ann", 1)
    assert refusal(lambda: m.release("bob", rid, NOW)) == "NOT_OWNER"
    run(m, m.release("ann", rid, NOW))
    assert m.seats[0].status == AVAILABLE
    assert refusal(lambda: m.release("ann", rid, NOW)) == "NOT_FOUND"


def test_lock_of_an_expired_hold_is_refused() -> None:
    m = seat_map()
    rid = hold(m, "ann", 1)
    assert refusal(lambda: m.lock("ann", (rid,), "p1", NOW + 300)) == "HOLD_EXPIRED"
    run(m, m.expire_due(NOW + 300))
    assert refusal(lambda: m.lock("ann", (rid,), "p1", NOW + 301)) == "HOLD_EXPIRED"


def test_lock_then_sell_marks_the_seats_sold_at_the_date_price() -> None:
    m = seat_map()
    r1, r2 = hold(m, "ann", 1), hold(m, "ann", 2)
    events, locked = m.lock("ann", (r1, r2), "p1", NOW)
    run(m, events)
    assert locked.amount == 200
    assert [m.seats[0].status, m.seats[1].status] == [CHECKOUT, CHECKOUT]
    assert m.expire_due(NOW + 1_000) == []  # a seat being paid for does not expire
    run(m, m.sell("p1"))
    assert [m.seats[0].status, m.seats[1].status] == [SOLD, SOLD]
    assert refusal(lambda: m.hold("bob", 1, NOW)) == "SEAT_TAKEN"


def test_unlock_puts_the_hold_back_and_expires_it_if_its_time_passed() -> None:
    m = seat_map()
    rid = hold(m, "ann", 1)
    run(m, m.lock("ann", (rid,), "p1", NOW)[0])
    assert run(m, m.unlock("p1", NOW + 10)) == [SeatsUnlocked("p1", (1,))]
    assert m.seats[0].status == HELD
    run(m, m.lock("ann", (rid,), "p2", NOW + 20)[0])
    events = run(m, m.unlock("p2", NOW + 400))
    assert events[-1] == HoldExpired(1, rid, "ann")
    assert m.available()[0] == 1  # free again


def test_someone_elses_reservation_cannot_be_paid() -> None:
    m = seat_map()
    rid = hold(m, "ann", 1)
    assert refusal(lambda: m.lock("bob", (rid,), "p1", NOW)) == "NOT_OWNER"


def test_snapshot_round_trip_keeps_every_seat() -> None:
    m = seat_map()
    r1 = hold(m, "ann", 1)
    hold(m, "bob", 2)
    run(m, m.lock("ann", (r1,), "p1", NOW)[0])
    copy = seat_map()
    copy.load_snapshot(m.to_snapshot())
    assert copy.seats == m.seats
    assert copy.by_user == m.by_user == {"ann": {1}, "bob": {2}}
    assert copy.holds_made == m.holds_made
    assert copy.next_deadline() == m.next_deadline()


@given(st.text(max_size=60))
def test_any_text_is_a_reservation_id_or_none_and_never_raises(text: str) -> None:
    parsed = parse_reservation_id(text)
    assert parsed is None or parsed[2] >= 0
    seat = parse_reservation_id(f"a.2027-01-15.{text}.1")
    if text.isascii() and text.isdigit() and len(text) <= 18:
        assert seat == ("a", "2027-01-15", int(text))
    else:
        assert seat is None


def test_reservation_ids_with_digits_that_are_not_ascii_are_none() -> None:
    assert parse_reservation_id("a.2027-01-15.\u00b2.1") is None
    assert parse_reservation_id("a.2027-01-15.1.\u0663") is None  # an Arabic-Indic three
