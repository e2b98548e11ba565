"""The server's memory while clients stall partway into their request heads.

    python -m loadtests.stalled_heads [--connections 1000] [--head-bytes 12288]

Starts a server on a temporary database, measures its RSS, opens `--connections` sockets that
each send the start of a request head of `--head-bytes` bytes (one header that never ends) and
then stall, measures again once the server has read what it was going to read, and prints both
with what became of the sockets (still open, answered, closed). A head past the server's limit
is refused and its socket closed; a head under it stays until the header timeout.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.server_process import ServerProcess

MIB = 1024 * 1024
SETTLE_SECONDS = 1.0  # RSS unchanged this long: the server has read all it will read
SEND_DEADLINE = 30.0


@dataclass
class Stalled:
    sock: socket.socket
    pending: memoryview
    answer: bytes = b""
    closed: bool = False


@dataclass
class Outcome:
    rss_before: int
    rss_after: int
    open: int
    closed: int
    answers: dict[str, int] = field(default_factory=dict)


def stalled_head(head_bytes: int) -> bytes:
    start = b"GET /healthz HTTP/1.1\r\nHost: stalled\r\nX-Stall: "
    return start + b"a" * max(0, head_bytes - len(start))


def pump(conns: list[Stalled], deadline: float) -> None:
    """Send what each socket still has to send, reading whatever the server answers."""
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
    while time.monotonic() < deadline and selector.get_map():
        for key, events in selector.select(timeout=0.2):
            conn = key.data
            assert isinstance(conn, Stalled)
            try:
                if events & selectors.EVENT_READ:
                    data = conn.sock.recv(65536)
                    conn.answer += data
                    if not data:
                        conn.closed = True
                if events & selectors.EVENT_WRITE and conn.pending and not conn.closed:
                    sent = conn.sock.send(conn.pending[:65536])
                    conn.pending = conn.pending[sent:]
            except OSError:
                conn.closed = True
            if conn.closed:
                selector.unregister(conn.sock)
            elif not conn.pending:
                selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if all(not c.pending or c.closed for c in conns):
            break
    selector.close()


def stall(port: int, connections: int, head_bytes: int) -> list[Stalled]:
    """`connections` sockets, each having sent what the server would read of a head of
    `head_bytes` (it may refuse it partway and close)."""
    payload = stalled_head(head_bytes)
    conns: list[Stalled] = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        conns.append(Stalled(sock, memoryview(payload)))
    pump(conns, time.monotonic() + SEND_DEADLINE)
    return conns


def settled_rss(rss_bytes: Callable[[], int], conns: list[Stalled]) -> int:
    """The server's RSS once it stopped changing for SETTLE_SECONDS (answers read meanwhile)."""
    last, since = rss_bytes(), time.monotonic()
    while time.monotonic() - since < SETTLE_SECONDS:
        pump(conns, time.monotonic() + 0.2)
        rss = rss_bytes()
        if rss != last:
            last, since = rss, time.monotonic()
    return last


def run(connections: int, head_bytes: int) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess("web", Path(tmp), {}) as server:
        time.sleep(SETTLE_SECONDS)
        rss_before = server.rss_bytes()
        conns = stall(server.port, connections, head_bytes)
        rss_after = settled_rss(server.rss_bytes, conns)
        answers: dict[str, int] = {}
        for conn in conns:
            status = conn.answer.split(b"\r\n", 1)[0].decode(errors="replace") or "none"
            answers[status] = answers.get(status, 0) + 1
            conn.sock.close()
        closed = sum(c.closed for c in conns)
        return Outcome(rss_before, rss_after, len(conns) - closed, closed, answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--head-bytes", type=int, default=12 * 1024)
    args = parser.parse_args()
    outcome = run(args.connections, args.head_bytes)
    grown = outcome.rss_after - outcome.rss_before
    print(
        f"{args.connections} connections stalled {args.head_bytes:,} bytes into a head: "
        f"RSS {outcome.rss_before / MIB:.1f} MiB -> {outcome.rss_after / MIB:.1f} MiB "
        f"(+{grown / MIB:.1f} MiB, {grown / args.connections / 1024:.1f} KiB a connection); "
        f"{outcome.open} still open, {outcome.closed} closed by the server; "
        f"answers: {outcome.answers}"
    )


if __name__ == "__main__":
    main()
