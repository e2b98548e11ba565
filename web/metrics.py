"""Prometheus metrics: requests by route and status, actors, queue, seats and websockets.

Business counters (holds, sales, expiries, admissions) count committed engine events; actor
figures (mailbox depth, turn latency, processed commands) and queue lengths are read from the
live actors when `/metrics` is scraped, so the hot path pays nothing for them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engine.face import (
    ActiveExpired,
    Admitted,
    Engine,
    Event,
    HoldExpired,
    HoldReleased,
    Joined,
    Origin,
    SeatHeld,
    SeatsSold,
    TokenCompleted,
)

if TYPE_CHECKING:
    from web.runtime import Runtime

PREFIX = "concert_queue"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        _disable_created_metrics()  # *_created series would double a scrape
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = RequestStats(LATENCY_BUCKETS)
        r.register(self.requests)
        self.events = EventCounts()
        r.register(self.events)
        websockets = Gauge(f"{PREFIX}_websocket_connections", "open websockets", registry=r)
        websockets.set_function(lambda: runtime.hub.count)
        r.register(EngineCollector(runtime))
        r.register(RoomCollector(runtime))

    def attach(self, engine: Engine) -> None:
        engine.subscribe(self.on_events)

    def on_events(self, origin: Origin, events: Sequence[Event]) -> None:
        self.events.count(events)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.observe(method, route, status, seconds)


# Each counted event kind: its counter (name, help) and how much one event adds. Looked up by
# kind, as a seat's events come at thousands a second and a lookup beats a chain of type tests.
_EVENT_COUNTERS: dict[type[Event], tuple[str, str, Callable[[Any], int]]] = {
    SeatHeld: ("seat_holds", "seats held", lambda e: 1),
    HoldReleased: ("seat_releases", "holds released", lambda e: 1),
    HoldExpired: ("hold_expiries", "holds that expired", lambda e: 1),
    SeatsSold: ("seats_sold", "seats sold", lambda e: len(e.seats)),
    Joined: ("queue_joins", "tokens issued", lambda e: 1),
    Admitted: ("queue_admissions", "users admitted", lambda e: len(e.seqs)),
    ActiveExpired: ("queue_expiries", "active windows that ran out", lambda e: len(e.seqs)),
    TokenCompleted: ("queue_completions", "tokens completed", lambda e: 1),
}


class EventCounts(Collector):
    """Business counters of committed engine events: plain integers on the hot path (no
    lock per increment, as prometheus-client's counters take), exported at scrape time."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys((name for name, _, _ in _EVENT_COUNTERS.values()), 0)

    def count(self, events: Sequence[Event]) -> None:
        for event in events:
            counter = _EVENT_COUNTERS.get(type(event))
            if counter is not None:
                name, _, amount = counter
                self.totals[name] += amount(event)

    def collect(self) -> Iterator[Metric]:
        for name, description, _ in _EVENT_COUNTERS.values():
            yield CounterMetricFamily(f"{PREFIX}_{name}", description, self.totals[name])


class RequestStats(Collector):
    """HTTP requests by method, route and status, and their durations by method and route.

    Plain counters on the hot path, turned into Prometheus families when `/metrics` is
    scraped: prometheus-client's own counter and histogram take a lock per increment, and
    with the middleware around them they were a twentieth of the hold route's time.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts: dict[tuple[str, str, int], int] = {}
        # Per (method, route): a count per bucket (the last one above every bound), then
        # the sum of the durations.
        self.durations: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.durations.get((method, route))
        if histogram is None:
            histogram = self.durations[(method, route)] = [0.0] * (len(self.buckets) + 2)
        histogram[bisect_left(self.buckets, seconds)] += 1  # `le`: the first bound >= it
        histogram[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            f"{PREFIX}_http_requests",
            "HTTP requests by route and status",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in self.counts.items():
            requests.add_metric([method, route, str(status)], count)
        durations = HistogramMetricFamily(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request duration by route",
            labels=["method", "route"],
        )
        bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for (method, route), histogram in self.durations.items():
            cumulative, running = [], 0.0
            for bound, in_bucket in zip(bounds, histogram[:-1], strict=True):
                running += in_bucket
                cumulative.append((bound, running))
            durations.add_metric([method, route], cumulative, histogram[-1])
        yield requests
        yield durations


class EngineCollector(Collector):
    """Actor and queue figures, read from the live actors at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_actor_mailbox_depth", "commands waiting in the mailbox", labels=["actor"]
        )
        processed = CounterMetricFamily(
            f"{PREFIX}_actor_commands_processed", "commands processed", labels=["actor"]
        )
        latency = GaugeMetricFamily(
            f"{PREFIX}_actor_turn_latency_seconds",
            "turn latency over the recent turns",
            labels=["actor", "quantile"],
        )
        waiting = GaugeMetricFamily(f"{PREFIX}_queue_waiting", "users waiting in the queue")
        active = GaugeMetricFamily(f"{PREFIX}_queue_active", "users admitted and active")
        journal = CounterMetricFamily(
            f"{PREFIX}_journal",
            "journal writer: group commits, events, failed commits",
            labels=["what"],
        )
        healthy = GaugeMetricFamily(
            f"{PREFIX}_journal_healthy", "1 while journal commits go through, 0 while they fail"
        )
        engine = self.runtime.running_engine
        if engine is not None:
            figures = engine.journal_stats()
            healthy.add_metric([], 1 if figures.healthy else 0)
            journal.add_metric(["commits"], figures.commits)
            journal.add_metric(["events"], figures.events)
            journal.add_metric(["failures"], figures.failures)
            every = engine.actor_stats()
            for stats in every:
                depth.add_metric([stats.key], stats.mailbox_depth)
                processed.add_metric([stats.key], stats.processed)
                latency.add_metric([stats.key, "0.5"], stats.latency_p50_ms / 1000)
                latency.add_metric([stats.key, "0.99"], stats.latency_p99_ms / 1000)
            totals = engine.totals(every)
            waiting.add_metric([], totals.waiting)
            active.add_metric([], totals.active)
        yield from (depth, processed, latency, waiting, active, journal, healthy)


class RoomCollector(Collector):
    """Each waiting room's figures (`room`: the concert id, `site` for the site-wide room),
    read from the engine's `rooms()` view at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, description: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_room_{name}", description, labels=["room", *labels])

        waiting = gauge("waiting", "buyers waiting in the room")
        pre_queued = gauge("pre_queued", "buyers in the room's pre-queue")
        per_minute = gauge("admitted_per_minute", "admissions per minute, measured")
        waited = gauge("waited_seconds", "join to admission, recent admissions", ["quantile"])
        conversion = gauge("conversion", "admitted buyers who paid, as a share")
        dropouts = CounterMetricFamily(
            f"{PREFIX}_room_dropouts",
            "buyers who left the room or were abandoned",
            labels=["room", "reason"],
        )
        engine = self.runtime.running_engine
        if engine is not None and engine.ready:
            for room in engine.rooms():
                label = room.concert_id or "site"
                waiting.add_metric([label], room.waiting)
                pre_queued.add_metric([label], room.pre_queued)
                per_minute.add_metric([label], room.admitted_per_minute)
                for quantile, value in (
                    ("0.5", room.waited_p50_seconds),
                    ("0.9", room.waited_p90_seconds),
                ):
                    if value is not None:
                        waited.add_metric([label, quantile], value)
                if room.conversion is not None:
                    conversion.add_metric([label], room.conversion)
                dropouts.add_metric([label, "left"], room.left)
                dropouts.add_metric([label, "abandoned"], room.abandoned)
        yield from (waiting, pre_queued, per_minute, waited, conversion, dropouts)


def _disable_created_metrics() -> None:
    disable: Callable[[], None] = prometheus_client.disable_created_metrics
    disable()
