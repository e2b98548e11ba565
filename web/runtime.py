"""What the running service holds: the store, the engine, the hub and the metrics.

Start-up (the lifespan) serves at once and recovers in the background: `/healthz` answers
while the journal is replayed, `/readyz` and every command answer 503 until recovery has
finished. A database that cannot be opened is retried with a growing delay (its error is
shown by `/readyz`), so the service comes up once the database does.

Shutdown drains: readiness goes to 503, websockets are closed with 1001 (going away), the
actors finish the commands already queued, and the journal commits everything before the
store closes.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from anyio.abc import TaskStatus

from engine.face import Engine
from engine.heap import freeze_long_lived, tune_collector
from engine.system import EngineSystem
from persistence import Store, open_store
from persistence.lease import ENGINE as ENGINE_LEASE
from web.errors import UNAVAILABLE, UNAVAILABLE_RETRY_AFTER, ApiError
from web.history import History
from web.hub import GOING_AWAY, Hub
from web.metrics import Metrics
from web.settings import Settings

log = logging.getLogger(__name__)

# Opens the engine the service runs on, calling the given attach with it before it starts (so
# that the hub and the metrics miss none of its events), and closes it on leaving.
EngineOpener = Callable[[Settings, Callable[[Engine], None]], AbstractAsyncContextManager[Engine]]

SHUTDOWN_TIMEOUT = 30.0
FENCE_CHECK_EVERY = 1.0  # seconds between two looks at whether the journal was fenced


@asynccontextmanager
async def open_embedded_engine(
    settings: Settings, attach: Callable[[Engine], None]
) -> AsyncIterator[Engine]:
    """The engine in this process, on the store named by `DATABASE_URL`: it owns every shard
    of the journal (the `engine` lease), so no other instance runs beside it."""
    async with open_store(
        settings.database_url, demo_seats=settings.engine.seats_per_date, lease=ENGINE_LEASE
    ) as store:
        system = EngineSystem(
            store.journal,
            config=settings.engine,
            catalog=await store.catalog(),
            catalog_store=store,
        )
        attach(system)
        async with system.running(), anyio.create_task_group() as tg:
            tg.start_soon(_stop_once_fenced, store)
            yield system
            tg.cancel_scope.cancel()


async def _stop_once_fenced(store: Store) -> None:
    while not store.journal.fenced:
        await anyio.sleep(FENCE_CHECK_EVERY)
    # Another instance took the database over: this one must serve nothing more.
    log.critical("%s; stopping this instance", store.journal.last_error)
    os.kill(os.getpid(), signal.SIGTERM)


class Runtime:
    def __init__(self, settings: Settings, engine_opener: EngineOpener = open_embedded_engine):
        self.settings = settings
        self.hub = Hub(settings.engine.hold_seconds, settings.engine.abandon_seconds)
        self.metrics = Metrics(self)
        self.history = History(
            self.metrics, lambda: self._system, every=settings.history_sample_seconds
        )
        self._system: Engine | None = None
        self.startup_error: str | None = None
        self.draining = False
        self._open = engine_opener
        self._stop: anyio.Event | None = None
        self._done: anyio.Event | None = None

    # -- what handlers ask -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Serving: recovered, not draining, and the journal commits."""
        engine = self._system
        return (
            engine is not None
            and engine.ready
            and not self.draining
            and engine.journal_stats().healthy
        )

    @property
    def journal_error(self) -> str | None:
        """Why commits fail right now, while they do."""
        engine = self._system
        return engine.journal_stats().last_error if engine is not None else None

    @property
    def running_engine(self) -> Engine | None:
        """The engine once built (recovering or serving), for figures; None before."""
        return self._system

    def engine(self) -> Engine:
        """The running engine, or 503 UNAVAILABLE while it starts or after it stopped."""
        engine = self._system
        if engine is None or not engine.ready:
            raise ApiError(
                UNAVAILABLE,
                "the service is starting or stopping; retry shortly",
                headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
            )
        return engine

    # -- life cycle --------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        self._stop = anyio.Event()
        self._done = anyio.Event()
        tune_collector()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.hub.run)
            tg.start_soon(self.history.run)
            await tg.start(self._run)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self.drain()
                    self._stop.set()
                    with anyio.move_on_after(SHUTDOWN_TIMEOUT):
                        await self._done.wait()
                tg.cancel_scope.cancel()

    async def drain(self) -> None:
        """Stop being ready and close the websockets (idempotent; the CLI calls it early)."""
        if self.draining:
            return
        self.draining = True
        log.info("draining: closing %d websockets", self.hub.count)
        await self.hub.close_all(GOING_AWAY)

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        assert self._stop is not None and self._done is not None
        task_status.started()
        delay = 0.25
        try:
            while not self._stop.is_set():
                try:
                    async with self._open(self.settings, self._attach) as engine:
                        await self._serve(engine)
                    return
                except Exception as error:
                    self.startup_error = f"{type(error).__name__}: {error}"
                    log.error("cannot run the engine (retrying in %.1fs): %s", delay, error)
                with anyio.move_on_after(delay):
                    await self._stop.wait()
                delay = min(delay * 2, 5.0)
        finally:
            self._done.set()

    def _attach(self, engine: Engine) -> None:
        self.hub.attach(engine)
        self.metrics.attach(engine)

    async def _serve(self, engine: Engine) -> None:
        assert self._stop is not None
        freeze_long_lived()
        self._system, self.startup_error = engine, None
        concerts = engine.concerts()
        dates = sum(len(c.dates) for c in concerts)
        log.info("ready: %d concerts, %d dates", len(concerts), dates)
        await self._stop.wait()
        log.info("stopping the engine")
