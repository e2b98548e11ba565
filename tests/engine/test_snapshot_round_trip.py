"""Any reachable state, snapshotted, stored as JSON and loaded back, is the state it was.

Each example drives one state type through random commands (the domain's own decisions, so
every state is one the engine can reach, refusals included) and checks the round trip after
every step: the loaded state holds the same values, derived indexes included, and writes the
same snapshot again.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.actor import DomainState
from engine.domain.checkout import (
    STARTED,
    CheckoutCompleted,
    CheckoutFailed,
    CheckoutStarted,
    Payments,
)
from engine.domain.seat_map import HELD, SeatMap
from engine.domain.waiting_room import RoomOpened, WaitingRoom
from engine.domain.wallet import Wallets
from engine.errors import Refused
from engine.events import Event
from tests.engine.snapshots import structure
from tests.engine.snapshots.fixtures import (
    PAYMENTS,
    SEAT_MAP,
    T0,
    WAITING_ROOM,
    WALLETS,
    new_actor,
    rid,
)

Op = tuple[str, str, int]  # what, user, a number (seat, index, amount or seconds)
Decide = Callable[[Op], list[Event]]
USERS = st.sampled_from(["ann", "bob", "cat", "dan"])
EXAMPLES = settings(max_examples=60, deadline=None)


def ops(*choices: tuple[str, st.SearchStrategy[int]]) -> st.SearchStrategy[list[Op]]:
    """Scripts of these commands; a command named twice comes up twice as often."""
    op = st.one_of(*(st.tuples(st.just(what), USERS, n) for what, n in choices))
    return st.lists(op, min_size=10, max_size=60)


def play(state_type: str, choose: Callable[[DomainState], Decide], script: list[Op]) -> None:
    actor = new_actor(state_type)
    state = actor.state
    decide = choose(state)
    for op in script:
        try:
            events = decide(op)
        except Refused:
            continue
        for event in events:
            state.apply(event)
        snapshot = state.to_snapshot()
        stored = json.loads(json.dumps(snapshot))
        loaded = actor.state_from_snapshot(stored)
        assert structure(loaded) == structure(state)
        assert loaded.to_snapshot() == stored == snapshot


def seat_map_decisions(state: DomainState) -> Decide:
    assert isinstance(state, SeatMap)
    seats, clock, locks = state, [T0], [0]

    def decide(op: Op) -> list[Event]:
        what, user, n = op
        now = clock[0]
        held = [s.reservation_id or "" for s in seats.holds_of(user) if s.status == HELD]
        paying = sorted(seats.payments_in_checkout())
        match what:
            case "hold":
                return seats.hold(user, n, now)
            case "release" if held:
                return seats.release(user, held[n % len(held)], now)
            case "lock" if held:
                locks[0] += 1
                return seats.lock(user, tuple(held[:n]), f"pay_{locks[0]}", now)[0]
            case "unlock" if paying:
                return seats.unlock(paying[n % len(paying)], now)
            case "sell" if paying:
                return seats.sell(paying[n % len(paying)])
            case "wait":
                clock[0] += n
                return seats.expire_due(clock[0])
        return []

    return decide


@EXAMPLES
@given(
    ops(
        ("hold", st.integers(1, 6)),
        ("hold", st.integers(1, 6)),
        ("release", st.integers(0, 3)),
        ("lock", st.integers(1, 2)),
        ("lock", st.integers(1, 2)),
        ("unlock", st.integers(0, 1)),
        ("sell", st.integers(0, 1)),
        ("sell", st.integers(0, 1)),
        ("wait", st.sampled_from([1, 150, 300])),
    )
)
def test_a_seat_map_round_trips_through_its_snapshot(script: list[Op]) -> None:
    play(SEAT_MAP, seat_map_decisions, script)


def waiting_room_decisions(state: DomainState) -> Decide:
    assert isinstance(state, WaitingRoom)
    room, clock = state, [T0]
    room.apply(RoomOpened("ab" * 32))

    def decide(op: Op) -> list[Event]:
        what, user, n = op
        match what:
            case "join":
                return room.join(user, clock[0])
            case "tick":
                clock[0] += n
                return room.tick(clock[0])
            case "complete" if user in room.seq_of:
                return room.complete(room.seq_of[user])
            case "configure":
                changes = ({"batch_size": 3}, {"max_active": 2}, {"max_active": None})
                return room.configure(**changes[n], paused=user == "ann")
        return []

    return decide


@EXAMPLES
@given(
    ops(
        ("join", st.just(0)),
        ("join", st.just(0)),
        ("tick", st.sampled_from([5, 10, 61])),
        ("tick", st.sampled_from([5, 10, 61])),
        ("complete", st.just(0)),
        ("configure", st.integers(0, 2)),
    )
)
def test_a_waiting_room_round_trips_through_its_snapshot(script: list[Op]) -> None:
    play(WAITING_ROOM, waiting_room_decisions, script)


def wallets_decisions(state: DomainState) -> Decide:
    assert isinstance(state, Wallets)
    wallets = state

    def decide(op: Op) -> list[Event]:
        what, user, n = op
        match what:
            case "charge":
                return wallets.charge(user, n, f"k{n % 3}" if n % 4 else None)[0]
            case "debit":
                return wallets.debit(user, n, f"pay_{user}_{n % 3}")
        return []

    return decide


@EXAMPLES
@given(ops(("charge", st.integers(1, 40)), ("debit", st.integers(0, 40))))
def test_wallets_round_trip_through_their_snapshot(script: list[Op]) -> None:
    play(WALLETS, wallets_decisions, script)


def payments_decisions(state: DomainState) -> Decide:
    assert isinstance(state, Payments)
    payments = state

    def decide(op: Op) -> list[Event]:
        what, user, n = op
        started = [p.payment_id for p in payments.payments.values() if p.status == STARTED]
        match what:
            case "start":
                pid = f"pay_{len(payments.payments)}"
                key = f"p{n % 3}" if n % 4 else None
                if payments.for_key(user, key) is not None:
                    return []  # the actor answers a retry from its record
                return [CheckoutStarted(pid, user, tuple(rid(s, s) for s in range(1, n + 1)), key)]
            case "complete" if started:
                return [CheckoutCompleted(started[n % len(started)], 120 * n, 1000 - n)]
            case "fail" if started:
                return [CheckoutFailed(started[n % len(started)], "HOLD_EXPIRED")]
        return []

    return decide


@EXAMPLES
@given(
    ops(("start", st.integers(1, 5)), ("complete", st.integers(0, 5)), ("fail", st.integers(0, 5)))
)
def test_payments_round_trip_through_their_snapshot(script: list[Op]) -> None:
    play(PAYMENTS, payments_decisions, script)
