"""The request counters behind `/metrics`, without a server: buckets and exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from web.metrics import RequestStats


def exposition(stats: RequestStats) -> list[str]:
    registry = CollectorRegistry()
    registry.register(stats)
    return generate_latest(registry).decode().splitlines()


def test_a_duration_counts_in_every_bucket_whose_bound_is_not_below_it() -> None:
    stats = RequestStats((0.01, 0.1))
    for seconds in (0.01, 0.05, 0.5):
        stats.observe("POST", "/api/reservations", 201, seconds)
    lines = exposition(stats)
    route = 'method="POST",route="/api/reservations"'
    assert f'concert_queue_http_request_duration_seconds_bucket{{le="0.01",{route}}} 1.0' in lines
    assert f'concert_queue_http_request_duration_seconds_bucket{{le="0.1",{route}}} 2.0' in lines
    assert f'concert_queue_http_request_duration_seconds_bucket{{le="+Inf",{route}}} 3.0' in lines
    assert f"concert_queue_http_request_duration_seconds_count{{{route}}} 3.0" in lines
    assert f"concert_queue_http_request_duration_seconds_sum{{{route}}} 0.56" in lines


def test_requests_are_counted_by_method_route_and_status() -> None:
    stats = RequestStats((0.01,))
    stats.observe("POST", "/api/reservations", 201, 0.001)
    stats.observe("POST", "/api/reservations", 409, 0.001)
    stats.observe("POST", "/api/reservations", 201, 0.001)
    lines = exposition(stats)
    name = "concert_queue_http_requests_total"
    assert f'{name}{{method="POST",route="/api/reservations",status="201"}} 2.0' in lines
    assert f'{name}{{method="POST",route="/api/reservations",status="409"}} 1.0' in lines
