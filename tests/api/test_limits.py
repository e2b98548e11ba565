"""What one client can take from the real server: head size and time, connections, memory;
and 503 on open connections after SIGTERM. Spoken over raw sockets, since the abuse is what no
HTTP client library does.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress

import httpx
import psutil
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from loadtests.stalled_heads import settled_rss, stall
from tests.api.client import unique
from tests.api.conftest import StartServer
from tests.api.raw_http import Answer, RawConnection, request
from tests.api.server import Server, running_server

KIB = 1024
MIB = 1024 * KIB
HEAD_LIMIT = 16 * KIB
CLOSED_WITHIN = 15.0  # bound for "the server closes it"; the timeouts are 1 s here, 10 s default
SHORT_TIMEOUT = {"HEADER_TIMEOUT_SECONDS": "1"}


def head_of(size: int, path: str = "/healthz") -> bytes:
    """A complete GET head of exactly `size` bytes (request line, headers, blank line)."""
    start = f"GET {path} HTTP/1.1\r\nHost: test\r\nX-Pad: ".encode()
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def assert_refused(answer: Answer, status: int, code: str) -> None:
    assert (answer.status, answer.error_code) == (status, code), answer
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/json"


def rss(server: Server) -> int:
    assert server.process is not None
    return psutil.Process(server.process.pid).memory_info().rss


def join(server: Server) -> str:
    response = httpx.post(server.url + "/api/queue/tokens", json={"userId": unique("limits")})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def websocket(server: Server, token: str) -> ClientConnection:
    return connect(f"{server.ws_url}?token={token}", open_timeout=20, close_timeout=2)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that gives a request 1 s to arrive."""
    with running_server(tmp_path_factory.mktemp("impatient"), SHORT_TIMEOUT) as running:
        yield running


# -- head size ---------------------------------------------------------------------------------


def test_a_head_past_16_kib_is_answered_431_and_the_connection_closed(server: Server) -> None:
    with RawConnection(server) as conn:
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: " + b"a" * (17 * KIB))
        assert_refused(conn.answer(), 431, "HEADERS_TOO_LARGE")
        assert conn.closed_within(CLOSED_WITHIN)


@pytest.mark.parametrize(("size", "status"), [(HEAD_LIMIT, 200), (HEAD_LIMIT + 1, 431)])
def test_a_head_may_take_16_kib_and_not_a_byte_more(server: Server, size: int, status: int) -> None:
    with RawConnection(server) as conn:
        conn.send(head_of(size))
        assert conn.answer().status == status


def test_an_8_mib_authorization_header_is_refused_without_being_read(server: Server) -> None:
    before = rss(server)
    with RawConnection(server) as conn:
        header = b"GET /api/concerts HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "

        def send_it() -> None:
            # The server stops reading after its answer: the rest may meet a closed socket.
            with suppress(OSError):
                conn.send(header + b"a" * (8 * MIB) + b"\r\n\r\n")

        sender = threading.Thread(target=send_it)
        sender.start()
        assert_refused(conn.answer(), 431, "HEADERS_TOO_LARGE")
        assert conn.closed_within(CLOSED_WITHIN)
        sender.join()
    assert rss(server) - before < 4 * MIB


def test_each_request_on_a_keep_alive_connection_has_its_own_16_kib(server: Server) -> None:
    with RawConnection(server) as conn:
        for _ in range(3):
            conn.send(head_of(12 * KIB))
            assert conn.answer().status == 200


def test_pipelined_requests_past_16_kib_together_are_each_answered(server: Server) -> None:
    with RawConnection(server) as conn:
        conn.send(head_of(7 * KIB) * 3)  # one write, likely one read: the limit is per head
        assert [conn.answer().status for _ in range(3)] == [200, 200, 200]


def test_a_body_does_not_count_towards_the_head(server: Server) -> None:
    user = unique("body")
    body = f'{{"userId": "{user}"}}'.encode()
    body += b" " * (16 * KIB - len(body))  # the body limit, after a head in the same write
    with RawConnection(server) as conn:
        conn.send(request("POST", "/api/queue/tokens", {"Content-Type": "application/json"}, body))
        answer = conn.answer()
        assert answer.status == 201, answer


# -- time to send a request --------------------------------------------------------------------


def test_a_head_trickled_byte_by_byte_is_answered_408(impatient: Server) -> None:
    with RawConnection(impatient) as conn:
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        deadline = time.monotonic() + CLOSED_WITHIN
        while time.monotonic() < deadline and not conn.buffer:
            try:
                conn.send(b"a")
            except OSError:
                break
            conn.closed_within(0.1)
        assert_refused(conn.answer(), 408, "REQUEST_TIMEOUT")
        assert conn.closed_within(CLOSED_WITHIN)


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(impatient: Server) -> None:
    with RawConnection(impatient) as conn:
        assert conn.closed_within(CLOSED_WITHIN)
        assert conn.buffer == b""


def test_a_stalled_second_request_on_a_keep_alive_connection_is_answered_408(
    impatient: Server,
) -> None:
    with RawConnection(impatient) as conn:
        conn.send(request("GET", "/healthz"))
        assert conn.answer().status == 200
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: te")
        assert_refused(conn.answer(), 408, "REQUEST_TIMEOUT")
        assert conn.closed_within(CLOSED_WITHIN)


def test_a_body_that_stalls_is_closed(impatient: Server) -> None:
    with RawConnection(impatient) as conn:
        head = request("POST", "/api/queue/tokens", {"Content-Length": "100"})
        conn.send(head + b'{"userId": ')
        assert conn.closed_within(CLOSED_WITHIN)


def test_requests_keep_coming_on_one_connection_past_the_timeout(impatient: Server) -> None:
    with RawConnection(impatient) as conn:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # the server's timeout is 1 s
            conn.send(request("GET", "/healthz"))
            assert conn.answer().status == 200
            time.sleep(0.2)


def test_a_websocket_outlives_the_head_timeout(impatient: Server) -> None:
    with websocket(impatient, join(impatient)) as ws:
        assert '"type"' in str(ws.recv(timeout=20))
        time.sleep(2.5)  # the server's timeout is 1 s
        ws.ping().wait(timeout=20)


# -- connections -------------------------------------------------------------------------------


def held(server: Server, stack: ExitStack) -> RawConnection:
    """A connection that was served (so it counts as open), retried while the server still
    counts the connections it was started and probed with."""
    for _ in range(100):
        conn = RawConnection(server)
        conn.send(request("GET", "/healthz"))
        if conn.answer().status == 200:
            return stack.enter_context(conn)
        conn.sock.close()  # a refusal counts until it is closed
        time.sleep(0.05)
    raise AssertionError("no connection was served")


def held_websocket(server: Server, token: str, stack: ExitStack) -> ClientConnection:
    """An open websocket, retried like `held`."""
    for _ in range(100):
        try:
            ws = stack.enter_context(websocket(server, token))
        except InvalidStatus:
            time.sleep(0.05)
            continue
        ws.recv(timeout=20)
        return ws
    raise AssertionError("no websocket was accepted")


def test_connections_past_max_connections_are_answered_503_overloaded(
    start_server: StartServer,
) -> None:
    server = start_server({"MAX_CONNECTIONS": "4"})
    with ExitStack() as stack:
        first, *_ = [held(server, stack) for _ in range(4)]
        with RawConnection(server) as extra:
            extra.send(request("GET", "/healthz"))
            answer = extra.answer()
            assert_refused(answer, 503, "OVERLOADED")
            assert answer.headers["retry-after"] == "1"
            assert extra.closed_within(CLOSED_WITHIN)
        first.sock.close()
        held(server, stack)  # a place freed is served again


def test_websockets_count_towards_the_connection_limit(start_server: StartServer) -> None:
    server = start_server({"MAX_CONNECTIONS": "3"})
    tokens = [join(server) for _ in range(4)]
    with ExitStack() as stack:
        for token in tokens[:3]:
            held_websocket(server, token, stack)
        with RawConnection(server) as extra:
            extra.send(request("GET", "/healthz"))
            assert_refused(extra.answer(), 503, "OVERLOADED")
        with pytest.raises(InvalidStatus) as refused:
            websocket(server, tokens[3])
        assert refused.value.response.status_code == 503


def test_at_the_open_files_limit_every_connection_gets_an_answer(
    start_server: StartServer,
) -> None:
    # 256 descriptors: the server serves 128 connections and answers the rest 503 (without
    # the limit, connections past the descriptors were reset without a word).
    server = start_server({}, open_files=256)
    with ExitStack() as stack:
        conns = [stack.enter_context(RawConnection(server)) for _ in range(300)]
        for conn in conns:
            conn.send(request("GET", "/healthz"))
        answers = [conn.answer() for conn in conns]
        statuses = sorted({a.status for a in answers})
        assert statuses == [200, 503]
        assert {a.error_code for a in answers if a.status == 503} == {"OVERLOADED"}
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_1000_connections_stalled_in_their_heads_take_little_memory(
    start_server: StartServer,
) -> None:
    server = start_server({})
    before = rss(server)
    stalled = stall(server.port, 1000, 12 * KIB)
    try:
        after = settled_rss(lambda: rss(server), stalled)
        assert not any(c.closed for c in stalled)  # all still open, within their time
    finally:
        for conn in stalled:
            conn.sock.close()
    # ~19 MiB measured (12 KiB buffered by the parser and ~7 KiB of connection state each).
    assert after - before < 48 * MIB


# -- SIGTERM -----------------------------------------------------------------------------------


def until_refusing_connections(server: Server) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.01)
    raise AssertionError("the server kept listening after SIGTERM")


def test_after_sigterm_a_request_on_an_open_connection_is_answered_503(
    start_server: StartServer,
) -> None:
    server = start_server({})
    assert server.process is not None
    with RawConnection(server) as busy, RawConnection(server) as idle:
        for conn in (busy, idle):
            conn.send(request("GET", "/healthz"))
            assert conn.answer().status == 200
        server.process.send_signal(signal.SIGTERM)
        until_refusing_connections(server)
        busy.send(request("GET", "/api/concerts"))
        answer = busy.answer()
        assert_refused(answer, 503, "UNAVAILABLE")
        assert answer.headers["retry-after"] == "1"
        assert busy.closed_within(CLOSED_WITHIN)
        assert idle.closed_within(CLOSED_WITHIN)  # no request came: closed after a grace
    assert server.process.wait(timeout=30) == 0
