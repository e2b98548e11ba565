"""The fault proxy itself, against a small echo server (and once against PostgreSQL).

"Nothing arrives" is checked by waiting `QUIET` seconds for a byte that must not come: the
proxy is switched synchronously, so there is no race to lose, only a bound on the wait.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.faults.proxy import FaultProxy, Mode
from tests.postgres import fresh_postgres_schema, postgres_base_url

QUIET = 0.3  # seconds to wait for bytes that must not arrive
ANSWER = 5.0  # seconds to wait for bytes that must arrive


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    with _EchoServer(("127.0.0.1", 0), _Echo) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield "127.0.0.1", server.server_address[1]
        server.shutdown()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(echo) as running:
        yield running


def connect(proxy: FaultProxy, timeout: float = ANSWER) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def echoed(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return receive(sock, len(data), ANSWER)


def receive(sock: socket.socket, size: int, timeout: float) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while len(received) < size:
        chunk = sock.recv(size - len(received))
        if not chunk:
            break
        received += chunk
    return received


def silent(sock: socket.socket) -> bool:
    """Nothing arrives within QUIET seconds (and the connection is not closed either)."""
    sock.settimeout(QUIET)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    return False


def test_an_open_proxy_forwards_bytes_both_ways(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert echoed(sock, b"hello") == b"hello"
        assert echoed(sock, b"x" * 200_000) == b"x" * 200_000
    assert proxy.mode is Mode.OPEN


def test_cut_resets_every_open_connection_and_refuses_new_ones_until_restored(
    proxy: FaultProxy,
) -> None:
    first, second = connect(proxy), connect(proxy)
    with first, second:
        assert echoed(first, b"a") == b"a" and echoed(second, b"b") == b"b"
        proxy.cut()
        for sock in (first, second):
            with pytest.raises(ConnectionResetError):
                sock.settimeout(ANSWER)
                sock.sendall(b"after the cut")
                sock.recv(1)
        assert proxy.connections == 0
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
    proxy.restore()
    with connect(proxy) as sock:
        assert echoed(sock, b"again") == b"again"


def test_freeze_keeps_connections_open_but_silent_and_restore_delivers_what_was_held(
    proxy: FaultProxy,
) -> None:
    with connect(proxy) as before:
        assert echoed(before, b"warm") == b"warm"
        proxy.freeze()
        before.sendall(b"held")
        assert silent(before)
        with connect(proxy) as during:  # accepted: the handshake completes
            during.sendall(b"new")
            assert silent(during)
            proxy.restore()
            assert receive(before, 4, ANSWER) == b"held"
            assert receive(during, 3, ANSWER) == b"new"


def test_drop_stalls_open_connections_and_leaves_new_ones_unanswered(proxy: FaultProxy) -> None:
    with connect(proxy) as before:
        assert echoed(before, b"warm") == b"warm"
        proxy.drop()
        before.sendall(b"held")
        assert silent(before)
        with pytest.raises(TimeoutError):
            connect(proxy, timeout=QUIET)
        proxy.restore()
        assert receive(before, 4, ANSWER) == b"held"
    with connect(proxy) as after:
        assert echoed(after, b"after") == b"after"


def test_a_proxy_switched_through_every_mode_keeps_its_port(proxy: FaultProxy) -> None:
    port = proxy.port
    for switch in (proxy.cut, proxy.freeze, proxy.drop, proxy.cut, proxy.drop, proxy.restore):
        switch()
        assert proxy.port == port
    with connect(proxy) as sock:
        assert echoed(sock, b"same port") == b"same port"


def test_a_postgresql_session_dies_with_a_cut_and_a_new_one_works_once_restored() -> None:
    base = postgres_base_url()
    if base is None:
        pytest.skip("DATABASE_URL_TEST is not set")
    with fresh_postgres_schema(base) as url:
        target = make_url(url)
        with FaultProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
            dsn = target.set(drivername="postgresql", port=proxy.port).render_as_string(False)
            with psycopg.connect(dsn, connect_timeout=5) as session:
                assert session.execute("SELECT 1").fetchone() == (1,)
                proxy.cut()
                with pytest.raises(psycopg.OperationalError):
                    session.execute("SELECT 1")
            proxy.restore()
            with psycopg.connect(dsn, connect_timeout=5) as session:
                assert session.execute("SELECT 2").fetchone() == (2,)
