"""Injected time: the wall clock in production, a manual clock in tests.

Times are wall-clock seconds (Unix epoch, float) because hold expiry and active windows are
persisted as absolute instants and must survive a restart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - time.time()))


class ManualClock:
    """A clock that only moves when a test says so.

    `advance` wakes every sleeper whose deadline has come and then waits until every task is
    blocked again, so the turns those wake-ups cause have run when it returns.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        entry = (deadline, event)
        self._sleepers.append(entry)
        try:
            await event.wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    async def advance(self, seconds: float) -> None:
        await self.set(self._now + seconds)

    async def set(self, instant: float) -> None:
        await settle()
        self._now = instant
        due = [entry for entry in self._sleepers if entry[0] <= instant]
        for entry in due:
            self._sleepers.remove(entry)
            entry[1].set()
        await settle()


async def settle() -> None:
    """Return once every other task is blocked: whatever a test set in motion has run.

    anyio.wait_all_tasks_blocked naps 0.1 s whenever a task is still busy, which makes
    manual-clock tests mostly sleep; on asyncio this polls with bare checkpoints instead.
    """
    try:
        this = asyncio.current_task()
    except RuntimeError:  # not on asyncio
        this = None
    if this is None:
        await anyio.wait_all_tasks_blocked()
        return
    while True:
        await asyncio.sleep(0)
        for task in asyncio.all_tasks():
            waiter = getattr(task, "_fut_waiter", None)
            if task is not this and (waiter is None or waiter.done()):
                break
        else:
            return
