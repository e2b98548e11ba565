"""Helpers shared by the engine and persistence tests: waiting until the engine is idle, and a
manual clock that does so quickly."""

from __future__ import annotations

import asyncio

import anyio

from engine.clock import ManualClock

# The engine's backends: asyncio (production, with uvloop) and trio, through anyio.
BACKENDS = ["asyncio", "trio"]


async def settle() -> None:
    """Return once every other task is blocked: whatever a test set in motion has run.

    anyio.wait_all_tasks_blocked naps 0.1 s on asyncio whenever a task is still busy, which
    makes manual-clock tests mostly sleep; on asyncio this polls with bare checkpoints instead
    (reading each task's private `_fut_waiter`, as anyio does). Elsewhere (trio) anyio's is
    exact and does not nap.
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


def manual_clock(start: float = 1_700_000_000.0) -> ManualClock:
    """A manual clock whose `advance` settles with `settle`."""
    return ManualClock(start, settle=settle)
