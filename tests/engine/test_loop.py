"""The event-loop seam on each backend: timers, the system clock's deadlines, the hand-off from
other threads, one-shot wake-ups."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import pytest
import trio
from outcome import Outcome

from engine.clock import SystemClock
from engine.loop import AnyioLoop, AsyncioLoop, Handoff, running

pytestmark = pytest.mark.anyio


def recorder() -> tuple[list[str], Callable[[str], Callable[[], None]]]:
    seen: list[str] = []
    return seen, lambda name: lambda: seen.append(name)


async def until(event: anyio.Event) -> None:
    """Wait for the last timer of a test (each test's earlier ones are due before it)."""
    with anyio.fail_after(5):
        await event.wait()


async def test_the_running_loop_is_found_for_each_backend(anyio_backend: str) -> None:
    assert isinstance(running(), AsyncioLoop) == (anyio_backend == "asyncio")
    assert running() is running()


def test_trio_hosted_by_an_asyncio_loop_is_told_from_it() -> None:
    """In trio's guest mode its tasks run inside the asyncio loop's callbacks: the seam goes
    by the library running the task (as anyio does, through sniffio), not by the thread."""

    async def guest() -> bool:
        return isinstance(running(), AnyioLoop)

    async def host() -> bool:
        assert isinstance(running(), AsyncioLoop)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome[bool]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            guest, run_sync_soon_threadsafe=loop.call_soon_threadsafe, done_callback=done.set_result
        )
        return (await done).unwrap()

    assert asyncio.run(host())


def test_outside_an_event_loop_there_is_none() -> None:
    with pytest.raises(RuntimeError):
        running()


async def test_timers_fire_in_deadline_order_and_a_cancelled_one_never() -> None:
    seen, note = recorder()
    loop = running()
    done = anyio.Event()
    loop.call_later(0.03, note("late"))
    loop.call_later(0.01, note("early"))
    loop.call_later(0.02, note("cancelled")).cancel()
    loop.call_later(0.03, done.set)
    await until(done)
    assert seen == ["early", "late"]


async def test_a_timer_cancelled_by_one_due_at_the_same_time_does_not_fire() -> None:
    seen, note = recorder()
    loop = running()
    done = anyio.Event()
    loop.call_later(0.01, lambda: second.cancel())
    second = loop.call_later(0.01, note("second"))
    loop.call_later(0.01, note("third"))
    loop.call_later(0.01, done.set)
    await until(done)
    assert seen == ["third"]


async def test_a_timer_earlier_than_the_one_waited_for_is_not_held_up_by_it() -> None:
    seen, note = recorder()
    loop = running()
    loop.call_later(10, note("far"))
    await anyio.sleep(0.01)  # the timers wait for the far one now
    done = anyio.Event()
    loop.call_later(0.01, done.set)
    await until(done)
    assert seen == []


async def test_a_timer_whose_callback_raises_is_reported_and_the_others_fire(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen, note = recorder()
    loop = running()
    reported: list[object] = []
    if anyio_backend == "asyncio":  # its exception handler reports (and by default logs) it
        native = asyncio.get_running_loop()
        handler = native.get_exception_handler()
        native.set_exception_handler(lambda _, context: reported.append(context["exception"]))

    def broken() -> None:
        raise ValueError("boom")

    try:
        done = anyio.Event()
        loop.call_later(0.01, broken)
        loop.call_later(0.01, note("after"))
        loop.call_later(0.01, done.set)
        await until(done)
    finally:
        if anyio_backend == "asyncio":
            native.set_exception_handler(handler)
    assert seen == ["after"]
    if anyio_backend == "asyncio":
        assert [str(error) for error in reported] == ["boom"]
    else:
        assert "boom" in caplog.text


async def test_many_cancelled_timers_leave_the_live_ones_alone() -> None:
    seen, note = recorder()
    loop = running()
    handles = [loop.call_later(5 + n, note("cancelled")) for n in range(200)]
    done = anyio.Event()
    loop.call_later(0.02, note("live"))
    loop.call_later(0.02, done.set)
    for handle in handles:
        handle.cancel()
    await until(done)
    assert seen == ["live"]


async def test_the_system_clock_calls_back_at_its_wall_clock_deadline_not_before() -> None:
    clock = SystemClock()
    fired: list[float] = []
    done = anyio.Event()

    def ring() -> None:
        fired.append(time.time())
        done.set()

    deadline = clock.now() + 0.05
    clock.call_at(deadline, ring)
    clock.call_at(deadline - 0.04, ring).cancel()
    await until(done)
    assert len(fired) == 1 and fired[0] >= deadline


async def test_callbacks_posted_from_a_thread_run_on_the_loop_in_order() -> None:
    post = running().handoff()
    loop_thread = threading.get_ident()
    ran: list[tuple[int, int]] = []
    done = anyio.Event()

    def note(n: int) -> None:
        ran.append((n, threading.get_ident()))

    def from_thread() -> None:
        for n in range(100):
            post(note, n)
        post(done.set)

    await anyio.to_thread.run_sync(from_thread)
    await until(done)
    assert ran == [(n, loop_thread) for n in range(100)]


def test_a_post_after_the_loop_has_gone_raises(anyio_backend: str) -> None:
    async def handoff() -> Handoff:
        return running().handoff()

    post = anyio.run(handoff, backend=anyio_backend)
    with pytest.raises(RuntimeError):
        post(print, "nobody is left to run this")


async def test_a_wakeup_set_before_its_wait_returns_at_once_and_after_it_wakes_the_waiter() -> None:
    new_wakeup = running().new_wakeup
    early = new_wakeup()
    early.set()
    with anyio.fail_after(1):
        await early.wait()
    late = new_wakeup()
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(late.wait)
            await anyio.sleep(0.01)
            late.set()  # the task group ends once the waiter has woken


async def test_a_checkpoint_lets_another_task_run() -> None:
    checkpoint = running().checkpoint
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await checkpoint()
        await checkpoint()  # trio may resume this task first once, never twice
        assert ran == ["other"]
