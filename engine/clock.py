"""Injected time: the wall clock in production, a manual clock in tests.

Times are wall-clock seconds (Unix epoch, float) because hold expiry and active windows are
persisted as absolute instants and must survive a restart.

Besides telling the time, a clock runs a callback at a deadline (`call_at`). Actors use it for
their timers instead of a sleeping task: under a spread hold load every date's deadline moves
thousands of times a second, and a callback costs a fraction of a task's sleep, wake-up and
cancel scope. The callback runs on the event loop's thread, between tasks, and must not block.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from engine.loop import EventLoop, TimerHandle, running

__all__ = ["Clock", "ManualClock", "SystemClock", "TimerHandle"]


class Clock(Protocol):
    def now(self) -> float: ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` on the event loop once `now() >= deadline` (never before)."""
        ...


class SystemClock:
    """The wall clock; its timers are the running event loop's (`engine.loop`)."""

    def now(self) -> float:
        return time.time()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        return _WallTimer(running(), deadline, callback)


class _WallTimer:
    """A deadline on the wall clock. The loop's timers run on its monotonic clock (and
    uvloop's in whole milliseconds), so one may fire a hair early by ours: then it waits the
    rest. No reference cycle is left behind for the collector."""

    __slots__ = ("callback", "deadline", "inner", "loop")

    def __init__(self, loop: EventLoop, deadline: float, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.deadline = deadline
        self.callback: Callable[[], None] | None = callback
        self.inner: TimerHandle | None = None
        self._schedule()

    def _schedule(self) -> None:
        self.inner = self.loop.call_later(max(0.0, self.deadline - time.time()), self._fire)

    def _fire(self) -> None:
        self.inner = None
        if self.deadline > time.time():
            self._schedule()
            return
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()

    def cancel(self) -> None:
        self.callback = None
        if self.inner is not None:
            self.inner.cancel()
            self.inner = None


class ManualClock:
    """A clock that only moves when a test says so; it needs no task on any backend.

    `advance` runs every timer whose deadline has come and then awaits `settle`, by default
    `anyio.wait_all_tasks_blocked` (which may nap 0.1 s at a time while a task is busy; tests
    pass a faster one), so the turns those timers cause have run when it returns.
    """

    def __init__(
        self,
        start: float = 1_700_000_000.0,
        *,
        settle: Callable[[], Awaitable[None]] = anyio.wait_all_tasks_blocked,
    ) -> None:
        self._now = start
        self._settle = settle
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _ManualTimer(callback)
        heapq.heappush(self._timers, (deadline, next(self._order), timer))
        return timer

    async def advance(self, seconds: float) -> None:
        await self.set(self._now + seconds)

    async def set(self, instant: float) -> None:
        await self._settle()
        self._now = instant
        while self._timers and self._timers[0][0] <= instant:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                timer.callback()
        await self._settle()


class _ManualTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
