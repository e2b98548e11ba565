"""Deadlines on blocking database calls: a call still running past its deadline has its
connection cut, so it fails instead of waiting as long as the outage.

A database that stops answering mid-call (a frozen network path, a host gone, a proxy that
holds the connection open) leaves the driver blocked on a socket that TCP may take many
minutes to give up on, and the journal's callers wait as long. One watchdog thread keeps the
deadlines of the calls in progress; when one passes it shuts the call's socket down (or, for
SQLite, interrupts the statement), which makes the blocked call raise at once. The caller
then treats it as the failure it is: a group commit fails its tickets (the commit may or may
not have landed, which the journal already handles as a lost acknowledgement), a load is
retried.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

Abort = Callable[[], None]


TICK = 0.25  # seconds between two looks at the deadlines: how late an abort may come


class Watchdog:
    """Runs `abort` for every guarded call that outlives its deadline (within `TICK`).

    The thread looks at the deadlines on a fixed tick instead of being woken for each new
    one: guarding a group commit then costs a dict entry, not a thread switch per commit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, Abort]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self.aborted = 0  # calls cut so far

    @contextlib.contextmanager
    def guard(self, seconds: float, abort: Abort) -> Iterator[None]:
        """Run the block with `abort` called if it has not finished after `seconds`."""
        ident = next(self._ids)
        with self._lock:
            self._armed[ident] = (time.monotonic() + seconds, abort)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="db-deadlines")
                self._thread.daemon = True
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._armed.pop(ident, None)  # gone already if it was aborted

    def _watch(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                now = time.monotonic()
                due = [(i, a) for i, (at, a) in self._armed.items() if at <= now]
                for ident, _ in due:
                    del self._armed[ident]
            for _, abort in due:
                self.aborted += 1
                try:
                    abort()
                except Exception:  # the call may have ended meanwhile
                    log.debug("aborting a database call past its deadline failed", exc_info=True)


WATCHDOG = Watchdog()


def abort_for(dbapi: Any) -> Abort:
    """How to cut a DB-API connection's call short from another thread: shut its socket
    down (psycopg), or interrupt its statement (sqlite3)."""
    if hasattr(dbapi, "interrupt"):  # sqlite3
        interrupt: Abort = dbapi.interrupt
        return interrupt
    fd = dbapi.pgconn.socket  # read now: once the connection breaks it may be gone

    def shut() -> None:
        log.warning("a database call passed its deadline: cutting its connection")
        # A duplicate descriptor, so that closing ours leaves the driver's own one alone.
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    return shut
