"""Deadlines on blocking database calls: a call past its deadline is cut, one in time is not."""

from __future__ import annotations

import socket
import time

from persistence.deadline import TICK, Watchdog


def test_a_call_blocked_past_its_deadline_has_its_socket_cut() -> None:
    watchdog = Watchdog()
    ours, peer = socket.socketpair()
    with ours, peer:
        started = time.monotonic()
        with watchdog.guard(0.2, lambda: ours.shutdown(socket.SHUT_RDWR)):
            received = ours.recv(1)  # the peer never sends: only the cut ends the wait
        assert received == b""
        assert time.monotonic() - started < 0.2 + 4 * TICK
        assert watchdog.aborted == 1


def test_a_call_that_ends_in_time_is_left_alone() -> None:
    watchdog = Watchdog()
    cut: list[bool] = []
    with watchdog.guard(0.2, lambda: cut.append(True)):
        pass
    time.sleep(0.2 + 2 * TICK)
    assert cut == [] and watchdog.aborted == 0


def test_an_abort_that_raises_leaves_the_watchdog_running() -> None:
    watchdog = Watchdog()

    def broken() -> None:
        raise OSError("the connection ended meanwhile")

    with watchdog.guard(0.0, broken):
        time.sleep(2 * TICK)
    ours, peer = socket.socketpair()
    with ours, peer, watchdog.guard(0.1, lambda: ours.shutdown(socket.SHUT_RDWR)):
        assert ours.recv(1) == b""
    assert watchdog.aborted == 2
