"""The limits' arithmetic and the protocol's own answers, without a server (tests/api/
test_limits.py has the behaviour against a real one)."""

from __future__ import annotations

import json

import pytest

from web.limits import MAX_HEAD_BYTES, Limits, connection_limit
from web.protocol import HEAD_TIMED_OUT, HEAD_TOO_LARGE, STOPPING, TOO_MANY_CONNECTIONS, Refusal
from web.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("open_files", "connections"),
    [(256, 128), (1024, 896), (20_000, 18_000), (1 << 20, 943_719)],
)
def test_connections_keep_a_reserve_of_a_tenth_of_the_open_files_and_at_least_128(
    open_files: int, connections: int
) -> None:
    assert connection_limit(open_files) == connections


def test_max_connections_overrides_the_open_files_limit() -> None:
    limits = Limits.for_process(Settings.from_env({"MAX_CONNECTIONS": "500"}), open_files=20_000)
    assert limits.max_connections == 500
    assert limits.max_lingering == (20_000 - 500) // 2


def test_the_defaults_are_16_kib_heads_arriving_within_10_s() -> None:
    limits = Limits.for_process(Settings.from_env({}), open_files=20_000)
    assert (limits.max_head_bytes, limits.head_timeout) == (16 * 1024, 10.0)
    assert MAX_HEAD_BYTES == 16 * 1024


@pytest.mark.parametrize("env", [{"MAX_CONNECTIONS": "0"}, {"HEADER_TIMEOUT_SECONDS": "soon"}])
def test_a_bad_limit_stops_the_start(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (HEAD_TOO_LARGE, 431, "HEADERS_TOO_LARGE"),
        (HEAD_TIMED_OUT, 408, "REQUEST_TIMEOUT"),
        (TOO_MANY_CONNECTIONS, 503, "OVERLOADED"),
        (STOPPING, 503, "UNAVAILABLE"),
    ],
)
def test_the_protocols_answers_keep_the_error_model_and_close(
    refusal: Refusal, status: int, code: str
) -> None:
    raw = refusal.encode([(b"server", b"uvicorn")])
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(status_line.split()[1]) == status
    assert json.loads(body)["error"]["code"] == code
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert ("retry-after" in headers) == (status == 503)
