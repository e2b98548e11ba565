"""The seam between the engine and the running event loop: timers, a hand-off from other
threads, one-shot wake-ups and a checkpoint.

`running()` returns the `EventLoop` of the library running the calling task, found as anyio
finds it (sniffio). On asyncio (uvloop included, which is what production runs on) that is
`AsyncioLoop`, built on the loop's own primitives; on any other backend anyio runs (trio) it is
`AnyioLoop`, built on anyio's. Look it up once, where a component starts on its loop (an actor's
`run`, the journal writer's `run`), and keep what it hands out: commands and commits then never
pay for finding the backend.

The contract, on either:

- `call_later(delay, callback)` runs `callback()` on the loop's thread, between tasks, no
  sooner than `delay` seconds from now by the loop's monotonic clock, unless the returned
  handle is cancelled first. The callback must not block; if it raises, the error is reported
  as the loop reports its callbacks' errors (asyncio: the loop's exception handler, which logs;
  elsewhere: logged here, as trio would otherwise end the run with `TrioInternalError`).
- `handoff()`, called on the loop, returns `post`: any thread may call `post(callback, *args)`
  to have `callback(*args)` run on the loop, in the order posted, errors reported likewise.
  `post` never waits for the loop, and raises `RuntimeError` once the loop is gone.
- `new_wakeup()` makes a `Wakeup`: set at most once, with one task at most waiting on it.
- `checkpoint()` lets the other tasks run, and raises there if the caller was cancelled.

Every task has an owner that waits for it. asyncio's timers are callbacks the loop itself owns;
anyio has none, so `AnyioLoop` serves its timers from one task that belongs to the run in the
same way: trio's system nursery, which cancels it and waits for it when the run's main task
ends (trio being the one backend besides asyncio that anyio runs on).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, final

import anyio
import anyio.lowlevel

log = logging.getLogger(__name__)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Wakeup(Protocol):
    def set(self) -> None: ...

    async def wait(self) -> None: ...


class Handoff(Protocol):
    def __call__(self, callback: Callable[..., object], /, *args: Any) -> object: ...


class EventLoop(Protocol):
    """What the engine uses of the running event loop (see the module's docstring)."""

    @property
    def new_wakeup(self) -> Callable[[], Wakeup]: ...

    @property
    def checkpoint(self) -> Callable[[], Awaitable[None]]: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...

    def handoff(self) -> Handoff: ...


def running() -> EventLoop:
    """The running event loop's `EventLoop`.

    Raises:
        RuntimeError: no event loop runs in this thread.
    """
    if _library() == "asyncio":
        return ASYNCIO
    return _anyio_loop()  # raises RuntimeError when no event loop runs at all


def _asyncio_or_none() -> str | None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "asyncio"


def _sniffed() -> str | None:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


# Which library runs this task, as anyio finds out: sniffio when it is installed (trio brings
# it; it also tells trio's tasks from an asyncio loop hosting trio in guest mode), else asyncio.
_library: Callable[[], str | None]
try:
    import sniffio
except ImportError:
    _library = _asyncio_or_none
else:
    _library = _sniffed


@final
class FutureWakeup:
    """A wake-up for one asyncio task: a bare future, made only if the task has to wait.

    `anyio.Event` on asyncio wraps an `asyncio.Event`, whose `wait` makes a future and looks
    the loop up under a global lock: at a few wake-ups per command, a tenth of the server's
    time under a spread hold load.
    """

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


@types.coroutine
def _yield_to_loop() -> Generator[None, None, None]:
    """One pass through the asyncio loop: what `asyncio.sleep(0)` and anyio's checkpoint on
    asyncio do, without their two coroutine frames and backend lookup."""
    yield


@final
class AsyncioLoop:
    """The running asyncio loop's own primitives (`running()` hands out the one instance)."""

    __slots__ = ()

    new_wakeup = FutureWakeup
    checkpoint = staticmethod(_yield_to_loop)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    def handoff(self) -> Handoff:
        return asyncio.get_running_loop().call_soon_threadsafe


ASYNCIO = AsyncioLoop()


@final
class AnyioLoop:
    """Any other anyio backend (trio): anyio's primitives, one instance per event loop run."""

    __slots__ = ("_timers", "new_wakeup")

    checkpoint = staticmethod(anyio.lowlevel.checkpoint)

    def __init__(self) -> None:
        # The backend's own event class: `anyio.Event()` looks the backend up on every call.
        self.new_wakeup: Callable[[], Wakeup] = type(anyio.Event())
        self._timers = _Timers()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self._timers.add(delay, callback)

    def handoff(self) -> Handoff:
        token = anyio.lowlevel.current_token()
        run_sync_soon, native = token.backend_class.run_sync_soon, token.native_token

        def post(callback: Callable[..., object], /, *args: Any) -> None:
            run_sync_soon(_logged, (callback, *args), native)

        return post


_RUN_LOOP: anyio.lowlevel.RunVar[AnyioLoop] = anyio.lowlevel.RunVar("engine.loop")


def _anyio_loop() -> AnyioLoop:
    try:
        return _RUN_LOOP.get()
    except LookupError:
        loop = AnyioLoop()
        _RUN_LOOP.set(loop)
        return loop


def _logged(callback: Callable[..., object], *args: Any) -> None:
    """Run a callback on the loop's behalf, logging its error as asyncio's loop would."""
    try:
        callback(*args)
    except Exception:
        log.exception("callback %r failed", callback)


@final
class _Timer:
    __slots__ = ("callback", "timers")

    def __init__(self, timers: _Timers, callback: Callable[[], None]) -> None:
        self.timers: _Timers | None = timers  # None once out of the heap
        self.callback: Callable[[], None] | None = callback  # None once fired or cancelled

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            if self.timers is not None:
                self.timers.cancelled()


@final
class _Timers:
    """The timers of one run: a heap, served by one task that sleeps until the earliest.

    The task starts with the first timer and belongs to the run (see the module's docstring).
    Cancelled timers stay in the heap until due, unless they come to outnumber the live ones.
    """

    __slots__ = ("_cancelled", "_changed", "_heap", "_order", "_serving")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._cancelled = 0
        self._changed: anyio.Event | None = None  # set to have the task look at the heap again
        self._serving = False

    def add(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self, callback)
        heapq.heappush(self._heap, (anyio.current_time() + delay, next(self._order), timer))
        if not self._serving:
            _spawn_for_the_run(self._serve)
            self._serving = True
        elif self._heap[0][2] is timer and self._changed is not None:
            self._changed.set()  # it sleeps until a later deadline
        return timer

    def cancelled(self) -> None:
        self._cancelled += 1
        if self._cancelled > 64 and 2 * self._cancelled > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].callback is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    async def _serve(self) -> None:
        while True:
            now = anyio.current_time()
            due: list[_Timer] = []
            while self._heap and self._heap[0][0] <= now:
                timer = heapq.heappop(self._heap)[2]
                if timer.callback is None:
                    self._cancelled -= 1
                else:
                    timer.timers = None
                    due.append(timer)
            # Fired after the pass, so that a timer one of them adds waits for the next; one
            # that an earlier callback cancels does not fire.
            for timer in due:
                callback, timer.callback = timer.callback, None
                if callback is not None:
                    _logged(callback)
            self._changed = changed = anyio.Event()
            with anyio.CancelScope(deadline=self._heap[0][0] if self._heap else math.inf):
                await changed.wait()


def _spawn_for_the_run(serve: Callable[[], Awaitable[None]]) -> None:
    """Start `serve` as a task that the running event loop run owns and waits for."""
    import trio  # the one backend besides asyncio; only imported when running on it

    trio.lowlevel.spawn_system_task(serve, name="engine.loop timers")
