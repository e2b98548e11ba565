"""The persistence facade the web layer opens: schema, demo catalog, journal writer, catalog.

    async with open_store("sqlite:///./concert-queue.db") as store:
        system = EngineSystem(store.journal, catalog=await store.catalog())
        async with system.running():
            ...

Leaving the block stops the journal writer after it has committed everything queued.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import anyio.to_thread
from sqlalchemy import Engine

from engine.catalog import ConcertInfo
from persistence.catalog import read_catalog, seed_demo_if_empty, upsert_concert
from persistence.database import connect, ensure_schema
from persistence.journal import LINGER, MAX_BATCH, SqlJournal
from persistence.lease import RENEW_EVERY, Fenced, Lease, acquire, release, renew

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///./concert-queue.db"


class Store:
    """An open database: the group-commit journal and the catalog."""

    def __init__(self, engine: Engine, journal: SqlJournal) -> None:
        self.engine = engine
        self.journal = journal

    async def catalog(self) -> list[ConcertInfo]:
        """Every concert with its dates, ordered by id and date."""
        return await anyio.to_thread.run_sync(read_catalog, self.engine)

    async def add_concert(self, concert: ConcertInfo) -> None:
        """Durably insert or update a concert and its dates (dates not named are kept)."""
        await anyio.to_thread.run_sync(upsert_concert, self.engine, concert)


@asynccontextmanager
async def open_store(
    url: str = DEFAULT_URL,
    *,
    demo_seats: int = 50,
    seed_demo: bool = True,
    max_batch: int = MAX_BATCH,
    linger: float = LINGER,
    lease: str | None = None,
    lease_mode: Literal["exclusive", "takeover"] = "exclusive",
) -> AsyncIterator[Store]:
    """Open `url`, create or migrate the schema, seed the demo catalog, run the journal writer.

    With `lease` (persistence/lease.py) the store first takes that lease (raising `LeaseHeld`
    while another live instance holds what it needs), renews it while open, gives it up on
    leaving, and every commit is fenced by it.
    """
    engine = await anyio.to_thread.run_sync(connect, url)
    try:
        await anyio.to_thread.run_sync(ensure_schema, engine)
        held = None
        if lease is not None:
            held = await anyio.to_thread.run_sync(
                functools.partial(acquire, engine, lease, mode=lease_mode)
            )
        if seed_demo:
            await anyio.to_thread.run_sync(seed_demo_if_empty, engine, demo_seats)
        journal = SqlJournal(engine, max_batch=max_batch, linger=linger, lease=held)
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            if held is not None:
                tg.start_soon(_keep, engine, held, journal)
            try:
                yield Store(engine, journal)
            except Exception as error:
                # Re-raised below as is: inside the task group it would come out wrapped in
                # an exception group, and callers of a context manager expect their own error.
                failure = error
            finally:
                with anyio.CancelScope(shield=True):
                    await journal.close()
                    if held is not None and not journal.fenced:
                        with contextlib.suppress(Exception):
                            await anyio.to_thread.run_sync(release, engine, held)
                tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
    finally:
        engine.dispose()


async def _keep(engine: Engine, lease: Lease, journal: SqlJournal) -> None:
    """Renew the lease until cancelled; once it is taken over, fence the journal."""
    while not journal.fenced:
        await anyio.sleep(RENEW_EVERY)
        try:
            await anyio.to_thread.run_sync(renew, engine, lease)
        except Fenced as fenced:
            journal.fence(str(fenced))
        except Exception as error:  # the database is down: commits say so; renew again later
            log.debug("renewing %s failed: %s", lease.name, error)
