"""The waiting room's rules as plain Python: tokens, rank, admission, expiry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain.waiting_room import (
    COMPLETED,
    EXPIRED,
    PROCESSING,
    WAITING,
    RoomOpened,
    WaitingRoom,
)
from engine.errors import Refused
from engine.events import Event
from engine.views import RoomSettings

T0 = 1_000.0


def room(batch: int = 3, interval: float = 10, max_active: int | None = None) -> WaitingRoom:
    r = WaitingRoom(RoomSettings(batch, interval, max_active, 60))
    r.apply(RoomOpened("ab" * 32))
    return r


def run(r: WaitingRoom, events: list[Event]) -> list[Event]:
    for e in events:
        r.apply(e)
    return events


def join(r: WaitingRoom, *users: str, at: float = T0 - 10) -> list[int]:
    for user in users:
        run(r, r.join(user, at))
    return [r.seq_of[user] for user in users]


def test_joining_twice_while_waiting_keeps_the_token() -> None:
    r = room()
    join(r, "ann")
    assert r.join("ann", T0) == []


def test_rank_is_one_based_among_the_waiting() -> None:
    r = room()
    a, b, c = join(r, "ann", "bob", "cid")
    assert [r.rank_of(a), r.rank_of(b), r.rank_of(c)] == [1, 2, 3]


def test_admission_takes_a_batch_in_arrival_order_and_ranks_move_up() -> None:
    r = room(batch=2)
    a, b, c, d = join(r, "a", "b", "c", "d")
    run(r, r.tick(T0))
    assert [r.status_of(s) for s in (a, b, c, d)] == [PROCESSING, PROCESSING, WAITING, WAITING]
    assert [r.rank_of(c), r.rank_of(d)] == [1, 2]
    assert r.tick(T0 + 9.9) == []  # not before the interval
    run(r, r.tick(T0 + 10))
    assert r.status_of(c) == PROCESSING


def test_active_window_expires_at_its_deadline() -> None:
    r = room()
    (a,) = join(r, "ann")
    run(r, r.tick(T0))
    assert r.active[a] == T0 + 60
    run(r, r.tick(T0 + 59.99))
    assert r.status_of(a) == PROCESSING
    run(r, r.tick(T0 + 60))
    assert r.status_of(a) == EXPIRED


def test_completed_or_expired_user_rejoins_at_the_back() -> None:
    r = room(batch=1)
    (a,) = join(r, "ann")
    run(r, r.tick(T0))
    run(r, r.complete(a))
    assert r.status_of(a) == COMPLETED
    (b,) = join(r, "bob")
    (a2,) = join(r, "ann")
    assert a2 != a
    assert r.rank_of(a2) == 2 and r.rank_of(b) == 1


def test_max_active_caps_admission_until_someone_leaves() -> None:
    r = room(batch=5, max_active=2)
    a, b, c = join(r, "a", "b", "c")
    run(r, r.tick(T0))
    assert r.status_of(c) == WAITING
    assert r.next_deadline() == T0 + 60  # only the active windows; no admission deadline
    run(r, r.complete(a))
    run(r, r.tick(T0 + 10))
    assert r.status_of(c) == PROCESSING
    assert r.status_of(b) == PROCESSING


def test_paused_room_admits_nobody_and_reports_no_eta() -> None:
    r = room()
    (a,) = join(r, "ann")
    run(r, r.configure(paused=True))
    assert r.tick(T0) == []
    assert r.view(a, T0).eta_seconds is None
    run(r, r.configure(paused=False))
    assert len(r.tick(T0)) == 1


def test_invalid_configuration_is_refused() -> None:
    r = room()
    for changes in ({"batch_size": 0}, {"interval_seconds": 0}, {"bogus": 1}):
        with pytest.raises(Refused):
            r.configure(**changes)


def test_token_is_verified_and_a_forged_one_names_nobody() -> None:
    r = room()
    (a,) = join(r, "ann")
    token = r.token_for(a)
    assert r.seq_for(token) == a
    assert r.seq_for(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert r.seq_for(f"{a}.nonsense") is None
    assert r.seq_for("garbage") is None
    assert r.seq_for("999.abc") is None


@given(st.text(max_size=40))
def test_any_text_is_a_token_or_names_nobody_and_never_raises(text: str) -> None:
    r = room()
    (a,) = join(r, "ann")
    assert r.seq_for(text) in (None, a)
    for forged in (f"{a}.{text}", f"{text}.{text}", r.token_for(a) + text):
        assert r.seq_for(forged) in (None, a)


def test_tokens_that_are_not_ascii_name_nobody() -> None:
    r = room()
    (a,) = join(r, "ann")
    token = r.token_for(a)
    assert r.seq_for("\u00b2." + token.partition(".")[2]) is None  # "²".isdigit() is true
    assert r.seq_for(token + "\xff") is None
    assert r.seq_for(token[:-1] + "\xe9") is None


def test_an_active_token_checked_once_still_refuses_a_forgery_and_ends_with_the_window() -> None:
    r = room()
    (a,) = join(r, "ann")
    run(r, r.tick(T0 + r.settings.interval_seconds))
    token = r.token_for(a)
    assert r.status_of(a) == PROCESSING
    assert r.seq_for(token) == a  # checked and remembered while active
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert r.seq_for(forged) is None
    assert r.seq_for(token) == a
    run(r, r.complete(a))
    assert r.seq_for(token) == a  # still genuine (its status says COMPLETED)
    assert r.seq_for(forged) is None


def test_eta_grows_with_rank_in_whole_batches() -> None:
    r = room(batch=2, interval=10)
    seqs = join(r, *[f"u{i}" for i in range(6)])
    run(r, r.tick(T0))
    etas = [r.view(s, T0).eta_seconds for s in seqs[2:]]
    assert etas == [10.0, 10.0, 20.0, 20.0]


def test_snapshot_round_trip_keeps_order_statuses_and_tokens() -> None:
    r = room(batch=1)
    a, b, c = join(r, "a", "b", "c")
    run(r, r.tick(T0))
    run(r, r.complete(a))
    copy = room()
    copy.load_snapshot(r.to_snapshot())
    assert [copy.status_of(s) for s in (a, b, c)] == [COMPLETED, WAITING, WAITING]
    assert copy.rank_of(c) == 2
    assert copy.seq_for(r.token_for(b)) == b
    assert copy.next_deadline() == r.next_deadline()
