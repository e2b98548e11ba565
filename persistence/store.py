"""The persistence facade the web layer opens: schema, demo catalog, journal writer, catalog.

    async with open_store("sqlite:///./concert-queue.db") as store:
        system = EngineSystem(store.journal, catalog=await store.catalog())
        async with system.running():
            ...

Leaving the block stops the journal writer after it has committed everything queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from sqlalchemy import Engine

from engine.catalog import ConcertInfo
from persistence.catalog import read_catalog, seed_demo_if_empty, upsert_concert
from persistence.database import connect, ensure_schema
from persistence.journal import LINGER, MAX_BATCH, SqlJournal

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
) -> AsyncIterator[Store]:
    """Open `url`, create or migrate the schema, seed the demo catalog, run the journal writer."""
    engine = await anyio.to_thread.run_sync(connect, url)
    try:
        await anyio.to_thread.run_sync(ensure_schema, engine)
        if seed_demo:
            await anyio.to_thread.run_sync(seed_demo_if_empty, engine, demo_seats)
        journal = SqlJournal(engine, max_batch=max_batch, linger=linger)
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            try:
                yield Store(engine, journal)
            except Exception as error:
                # Re-raised below as is: inside the task group it would come out wrapped in
                # an exception group, and callers of a context manager expect their own error.
                failure = error
            finally:
                with anyio.CancelScope(shield=True):
                    await journal.close()
        if failure is not None:
            raise failure
    finally:
        engine.dispose()
