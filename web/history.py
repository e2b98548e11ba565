"""The service's own figures over the last 30 minutes, for the dashboard's live charts.

`History` keeps one `Sample` every `SAMPLE_SECONDS` in a ring buffer of `WINDOW_SECONDS`: the
queue's length, admissions per minute, holds per second, seats sold per minute and the p99
latency of the hold route over the interval. A sample only reads what the service counts
anyway (the metrics' counters of committed events and its request histogram, web/metrics.py),
so no request does any work for it, and no actor is asked (in a cluster, asking for an actor's
stats makes a gateway fetch every actor's from the hosts). The queue's length and the active
users are the engine's totals read once, at the first sample, moved on by the joins,
admissions, expiries and completions counted since. The sampler is one task of the app's task
group (`History.run`). The figures are those of the process that answers (in a cluster, one
gateway's requests; the events of every shard).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from engine.face import ActorStats, Totals
from web.metrics import Metrics

SAMPLE_SECONDS = 5.0
WINDOW_SECONDS = 30 * 60.0
HOLD_ROUTE = ("POST", "/api/reservations")
PAY_ROUTE = ("POST", "/api/payments")


class Figures(Protocol):
    """What a sample asks of the engine (its face has it)."""

    @property
    def ready(self) -> bool: ...

    def totals(self, stats: Sequence[ActorStats] | None = None) -> Totals: ...


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # Unix seconds, the end of the interval
    waiting: int
    active: int
    admissions_per_minute: float
    holds_per_second: float
    sales_per_minute: float
    hold_p99_ms: float | None  # None: no hold was answered in the interval


@dataclass(frozen=True, slots=True)
class _Reading:
    """The cumulative figures at one instant; a sample is the difference of two readings."""

    monotonic: float
    joins: int
    admissions: int
    leaves: int  # active windows that ran out, and tokens completed
    holds: int
    sold: int
    hold_buckets: tuple[float, ...]  # requests per latency bucket, the last one past every bound


@dataclass(frozen=True, slots=True)
class _Baseline:
    """The queue as the engine's totals said at one reading."""

    waiting: int
    active: int
    reading: _Reading


class History:
    def __init__(
        self,
        metrics: Metrics,
        engine: Callable[[], Figures | None],
        *,
        every: float = SAMPLE_SECONDS,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.engine = engine
        self.every = every
        self.samples: deque[Sample] = deque(maxlen=max(1, round(window / every)))
        self._last: _Reading | None = None
        self._baseline: _Baseline | None = None

    async def run(self) -> None:
        """Sample every `every` seconds until cancelled."""
        while True:
            await anyio.sleep(self.every)
            self.sample()

    def sample(self, *, monotonic: float | None = None, at: float | None = None) -> None:
        """Take one sample (none before the engine serves; the first reading only starts the
        count, as a rate needs two)."""
        engine = self.engine()
        if engine is None or not engine.ready:
            return
        reading = self._read(time.monotonic() if monotonic is None else monotonic)
        last, self._last = self._last, reading
        if self._baseline is None:
            # The only read of the engine's totals (not free with many users: they sum every
            # balance); from here on the counted events move the queue's figures on.
            totals = engine.totals(())
            self._baseline = _Baseline(totals.waiting, totals.active, reading)
        if last is None or reading.monotonic <= last.monotonic:
            return
        seconds = reading.monotonic - last.monotonic
        base = self._baseline
        admitted = reading.admissions - base.reading.admissions
        self.samples.append(
            Sample(
                at=time.time() if at is None else at,
                waiting=max(0, base.waiting + reading.joins - base.reading.joins - admitted),
                active=max(0, base.active + admitted - (reading.leaves - base.reading.leaves)),
                admissions_per_minute=(reading.admissions - last.admissions) * 60 / seconds,
                holds_per_second=(reading.holds - last.holds) / seconds,
                sales_per_minute=(reading.sold - last.sold) * 60 / seconds,
                hold_p99_ms=_quantile_ms(
                    0.99,
                    self.metrics.requests.buckets,
                    [
                        now - then
                        for now, then in zip(reading.hold_buckets, last.hold_buckets, strict=True)
                    ],
                ),
            )
        )

    def payments(self) -> tuple[int, int]:
        """Payments answered since the start: (refused: 4xx, the buyer's; failed: 5xx, ours)."""
        refused = failed = 0
        for (method, route, status), count in list(self.metrics.requests.counts.items()):
            if (method, route) == PAY_ROUTE:
                if 400 <= status < 500:
                    refused += count
                elif status >= 500:
                    failed += count
        return refused, failed

    def _read(self, monotonic: float) -> _Reading:
        totals = self.metrics.events.totals
        histogram = self.metrics.requests.durations.get(HOLD_ROUTE)
        buckets = tuple(histogram[:-1]) if histogram is not None else ()
        if not buckets:
            buckets = (0.0,) * (len(self.metrics.requests.buckets) + 1)
        return _Reading(
            monotonic=monotonic,
            joins=totals["queue_joins"],
            admissions=totals["queue_admissions"],
            leaves=totals["queue_expiries"] + totals["queue_completions"],
            holds=totals["seat_holds"],
            sold=totals["seats_sold"],
            hold_buckets=buckets,
        )


def _quantile_ms(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """The q-quantile of a histogram (as Prometheus' histogram_quantile estimates it: linear
    within the bucket it falls in), in milliseconds; past the last bound, that bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    below = 0.0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            if index >= len(bounds):
                return bounds[-1] * 1000
            lower = bounds[index - 1] if index else 0.0
            return (lower + (bounds[index] - lower) * (rank - below) / count) * 1000
        below += count
    return bounds[-1] * 1000
