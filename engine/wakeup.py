"""One-shot wake-ups for the actor runtime's hot path: a mailbox waiting for a command, a
caller waiting for its reply.

`anyio.Event` on asyncio wraps an `asyncio.Event`, whose `wait` makes a future and looks the
loop up under a global lock; at a few wake-ups per command that layering was a tenth of the
server's time under a spread hold load. A wake-up has one waiter at most and is set once, so on
asyncio a bare future does; on another backend it is anyio's own event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import anyio


class Wakeup(Protocol):
    def set(self) -> None: ...

    async def wait(self) -> None: ...


class FutureWakeup:
    """A wake-up for one asyncio task."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        if not self._set:
            self._future = asyncio.get_running_loop().create_future()
            await self._future


def wakeup_factory() -> Callable[[], Wakeup]:
    """The cheapest wake-up the running backend offers (call from inside the event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not on asyncio
        pass
    else:
        return FutureWakeup
    # `anyio.Event()` looks the backend up on every call: keep the backend's own class.
    event_class: Callable[[], Wakeup] = type(anyio.Event())
    return event_class
