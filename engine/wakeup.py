"""One-shot wake-ups for code that waits on the engine outside its actors (the websocket hub's
writers): the running event loop's cheapest kind, from `engine.loop`."""

from __future__ import annotations

from collections.abc import Callable

from engine.loop import Wakeup, running

__all__ = ["Wakeup", "wakeup_factory"]


def wakeup_factory() -> Callable[[], Wakeup]:
    """The running event loop's wake-up class: call it on the loop, once per component.

    Raises:
        RuntimeError: no event loop runs in this thread.
    """
    return running().new_wakeup
