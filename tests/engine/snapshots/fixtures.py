"""Freeze each state type's snapshot, with the events it was taken from, as JSON fixtures.

    python -m tests.engine.snapshots.fixtures tests/engine/snapshots/v<N>

writes one file per state type (seat map, waiting room, concert room, wallets, payments): the
events of a fixed scenario, the snapshot the code of the day takes after the first
`snapshot_seq` of them, and the actor it belongs to. `v0/` was written by the last release
whose snapshots carried no version (bdff506), `v1/` by the first with versions, `v2/` by the
first with concerts' own rooms (only the formats it changed or added). Whenever a state type's
snapshot format changes, bump its version and freeze the new format under a new directory, so
every format a release ever wrote stays tested (`test_snapshot_formats.py` checks that none is
missing).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.actor import Actor
from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.clock import ManualClock
from engine.config import EngineConfig
from engine.domain.checkout import CheckoutCompleted, CheckoutFailed, CheckoutStarted, Payments
from engine.domain.concert_room import ConcertRoom, leading_zero_bits
from engine.domain.seat_map import SeatMap
from engine.domain.waiting_room import RoomOpened, WaitingRoom
from engine.domain.wallet import Wallets
from engine.events import Event, from_payload, to_payload
from engine.journal import MemoryJournal
from engine.system import EngineSystem
from engine.views import OnSale

CONFIG = EngineConfig(
    hold_seconds=300,
    max_holds_per_user=4,
    admit_batch=2,
    admit_interval_seconds=10,
    max_active=3,
    active_ttl_seconds=60,
    wallet_shards=1,
    checkout_shards=1,
)
DATE = ConcertDateInfo("aurora", "2027-01-15", 20, 120)
CONCERT = ConcertInfo("aurora", "Aurora", "Hall", (DATE,))
T0 = 1_700_000_000.0
ON_SALE = OnSale(T0 + 100, 900, 2, 10, None, 60, proof_of_work=1)
GIG = ConcertInfo("gig", "Gig", "Club", (ConcertDateInfo("gig", "2027-01-16", 20, 50),), ON_SALE)

SEAT_MAP, WAITING_ROOM, WALLETS, PAYMENTS = "seat_map", "waiting_room", "wallets", "payments"
CONCERT_ROOM = "concert_room"
ACTOR_KEYS = {
    SEAT_MAP: "date:aurora:2027-01-15",
    WAITING_ROOM: "waiting-room",
    WALLETS: "wallet:0",
    PAYMENTS: "checkout:0",
    CONCERT_ROOM: "room:gig",
}


def rid(seat: int, hold: int) -> str:
    return f"{DATE.concert_id}.{DATE.date}.{seat}.{hold}"


def new_actor(state_type: str) -> Actor[Any]:
    """A fresh actor of `state_type`, configured as the fixtures' scenario expects."""
    system = EngineSystem(
        MemoryJournal(), config=CONFIG, clock=ManualClock(T0), catalog=[CONCERT, GIG]
    )
    [actor] = [a for a in system.all_actors() if a.key == ACTOR_KEYS[state_type]]
    return actor


class _Recorder:
    """Applies what each decision returns and keeps the events, as an actor's turns would."""

    def __init__(self, apply: Callable[[Event], None]) -> None:
        self.apply = apply
        self.events: list[Event] = []

    def __call__(self, events: list[Event]) -> None:
        for event in events:
            self.apply(event)
            self.events.append(event)


def seat_map_scenario(seats: SeatMap, step: _Recorder) -> int:
    step(seats.hold("ann", 1, T0))
    step(seats.hold("ann", 2, T0))
    step(seats.hold("bob", 3, T0 + 5))
    step(seats.release("ann", seats.seats[1].reservation_id or "", T0 + 10))
    step(seats.hold("cat", 4, T0 + 20))
    step(seats.hold("cat", 5, T0 + 20))
    step(seats.lock("cat", (rid(4, 4), rid(5, 5)), "pay_c", T0 + 30)[0])
    step(seats.sell("pay_c"))
    step(seats.lock("bob", (rid(3, 3),), "pay_b", T0 + 40)[0])
    step(seats.hold("dan", 6, T0 + 50))
    step(seats.expire_due(T0 + 301))  # ann's seat 1; bob's seat 3 is in checkout
    covered = len(step.events)
    step(seats.hold("eve", 7, T0 + 302))
    step(seats.unlock("pay_b", T0 + 400))  # back to HELD, and lapsed long ago
    return covered


def waiting_room_scenario(room: WaitingRoom, step: _Recorder) -> int:
    step([RoomOpened("5e" * 32)])
    for n in range(1, 7):
        step(room.join(f"u{n}", T0 + n))
    step(room.tick(T0 + 10))  # u1, u2
    step(room.complete(room.seq_of["u1"]))
    step(room.configure(batch_size=3))
    step(room.tick(T0 + 20))  # capped by max_active 3: u3, u4
    step(room.tick(T0 + 75))  # u2's window ran out; u5 comes in
    step(room.join("u1", T0 + 76))  # completed, so joining again issues a new token
    step(room.configure(paused=True, max_active=None))
    covered = len(step.events)
    step(room.configure(paused=False))
    step(room.tick(T0 + 90))
    return covered


def concert_room_scenario(room: ConcertRoom, step: _Recorder) -> int:
    step([RoomOpened("5e" * 32)])
    for n in range(1, 6):
        challenge = room.challenge(T0 + n, bytes([n]) * 12)
        nonce = next(
            str(k)
            for k in range(10_000)
            if leading_zero_bits(hashlib.sha256(f"{challenge.challenge}:{k}".encode()).digest())
        )
        step(room.join(f"u{n}", T0 + n) + room.check_work(challenge.challenge, nonce, T0 + n))
    step(room.leave(room.seq_of["u2"], T0 + 50))  # from the pre-queue
    step(room.start(T0 + 100, "ab" * 32))
    step(room.join("u6", T0 + 101))
    step(room.tick(T0 + 110))  # two of the shuffled pre-queue
    covered = len(step.events)
    step(room.reschedule(batch_size=3))
    step(room.leave(room.seq_of["u6"], T0 + 111))
    step(room.tick(T0 + 120))
    return covered


def wallets_scenario(wallets: Wallets, step: _Recorder) -> int:
    step(wallets.charge("ann", 500, "k1")[0])
    step(wallets.charge("bob", 300, None)[0])
    step(wallets.charge("ann", 200, "k2")[0])
    step(wallets.debit("ann", 240, "pay_1"))
    step(wallets.debit("bob", 100, "pay_2"))
    covered = len(step.events)
    step(wallets.charge("cat", 50, "k1")[0])
    step(wallets.debit("ann", 10, "pay_3"))
    return covered


def payments_scenario(payments: Payments, step: _Recorder) -> int:
    step([CheckoutStarted("pay_1", "ann", (rid(1, 1), rid(2, 2)), "p1")])
    step([CheckoutCompleted("pay_1", 240, 460)])
    step([CheckoutStarted("pay_2", "bob", (rid(3, 3),), None)])
    step([CheckoutFailed("pay_2", "INSUFFICIENT_BALANCE")])
    step([CheckoutStarted("pay_3", "cat", (rid(4, 4),), "p3")])
    step([CheckoutStarted("pay_4", "ann", (rid(5, 5),), "p4")])
    step([CheckoutFailed("pay_4", "HOLD_EXPIRED")])  # frees its key
    covered = len(step.events)
    step([CheckoutCompleted("pay_3", 120, 0)])
    step([CheckoutStarted("pay_5", "ann", (rid(6, 6),), "p4")])
    return covered


SCENARIOS: dict[str, Callable[[Any, _Recorder], int]] = {
    SEAT_MAP: seat_map_scenario,
    WAITING_ROOM: waiting_room_scenario,
    CONCERT_ROOM: concert_room_scenario,
    WALLETS: wallets_scenario,
    PAYMENTS: payments_scenario,
}


def fixture(state_type: str) -> dict[str, Any]:
    """The scenario of `state_type` played on a fresh state, snapshotted part way."""
    state = new_actor(state_type).state
    step = _Recorder(state.apply)
    covered = SCENARIOS[state_type](state, step)
    # Replay the covered events on a fresh state: the snapshot is of the state after them.
    at_snapshot = new_actor(state_type).state
    for event in step.events[:covered]:
        at_snapshot.apply(event)
    return {
        "actor": ACTOR_KEYS[state_type],
        "snapshot_seq": covered,
        "snapshot": at_snapshot.to_snapshot(),
        "events": [{"kind": e.kind, "payload": to_payload(e)} for e in step.events],
    }


def events_of(data: dict[str, Any]) -> list[Event]:
    return [from_payload(e["kind"], e["payload"]) for e in data["events"]]


def main(directory: str) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for state_type in SCENARIOS:
        text = json.dumps(fixture(state_type), indent=1, sort_keys=True)
        (out / f"{state_type}.json").write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
