"""The dashboard's history: rates and the hold p99 from the counters between two samples, a
ring buffer of 30 minutes, nothing before the engine serves. Samples are taken by hand at
given instants, never by waiting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from engine.face import ActorStats, Totals
from web.history import HOLD_ROUTE, History
from web.runtime import Runtime
from web.settings import Settings


@dataclass
class Room:
    """The engine as a sample sees it: ready or not, and its totals (of which the queue's)."""

    ready: bool = True
    waiting: int = 0
    active: int = 0
    totals_read: list[int] = field(default_factory=list)

    def totals(self, stats: Sequence[ActorStats] | None = None) -> Totals:
        assert stats == (), "the sample must not make the engine summarise every actor"
        self.totals_read.append(1)
        return Totals(self.waiting, self.active, *([0] * 15))


def _history(room: Room, window: float = 60.0) -> tuple[History, Runtime]:
    runtime = Runtime(Settings())
    return History(runtime.metrics, lambda: room, every=5.0, window=window), runtime


def test_a_sample_gives_the_rates_of_the_counters_over_its_interval() -> None:
    room = Room(waiting=450, active=30)
    history, runtime = _history(room)
    history.sample(monotonic=100.0, at=1_000.0)
    totals = runtime.metrics.events.totals
    totals["seat_holds"] += 50
    totals["seats_sold"] += 3
    totals["queue_joins"] += 50
    totals["queue_admissions"] += 100
    totals["queue_expiries"] += 20
    totals["queue_completions"] += 10
    history.sample(monotonic=110.0, at=1_010.0)

    (sample,) = history.samples
    # The queue: 450 + 50 joined - 100 admitted; active: 30 + 100 - 20 ran out - 10 paid.
    assert (sample.at, sample.waiting, sample.active) == (1_010.0, 400, 100)
    assert len(room.totals_read) == 1  # the engine's totals are read once, at the start
    assert sample.holds_per_second == pytest.approx(5.0)
    assert sample.sales_per_minute == pytest.approx(18.0)
    assert sample.admissions_per_minute == pytest.approx(600.0)
    assert sample.hold_p99_ms is None  # no hold was answered over HTTP


def test_the_hold_p99_is_of_the_holds_answered_in_the_interval_only() -> None:
    history, runtime = _history(Room())
    requests = runtime.metrics.requests
    for _ in range(100):
        requests.observe(*HOLD_ROUTE, 201, 0.4)  # before the first sample: not counted
    history.sample(monotonic=0.0)
    for _ in range(99):
        requests.observe(*HOLD_ROUTE, 201, 0.002)
    requests.observe(*HOLD_ROUTE, 409, 0.3)
    requests.observe("GET", "/api/concerts", 200, 4.0)  # another route
    history.sample(monotonic=5.0)
    # The 99th of 100 is the last of the 99 in the (1 ms, 2.5 ms] bucket.
    assert history.samples[-1].hold_p99_ms == pytest.approx(2.5)


def test_the_ring_keeps_the_window_and_drops_the_oldest() -> None:
    history, _ = _history(Room(), window=20.0)
    for second in range(0, 60, 5):
        history.sample(monotonic=float(second), at=float(second))
    assert [s.at for s in history.samples] == [40.0, 45.0, 50.0, 55.0]


def test_nothing_is_sampled_before_the_engine_serves() -> None:
    room = Room(ready=False)
    history, _ = _history(room)
    history.sample(monotonic=0.0)
    history.sample(monotonic=5.0)
    assert list(history.samples) == []
    room.ready = True
    history.sample(monotonic=10.0)
    history.sample(monotonic=15.0)
    assert len(history.samples) == 1


def test_payments_refused_to_the_buyer_are_counted_apart_from_failures() -> None:
    history, runtime = _history(Room())
    requests = runtime.metrics.requests
    for status in (201, 402, 409, 404, 503, 500, 201):
        requests.observe("POST", "/api/payments", status, 0.01)
    requests.observe("POST", "/api/reservations", 409, 0.01)
    assert history.payments() == (3, 2)
