"""Fixtures for persistence tests: every test runs on SQLite and on PostgreSQL, and every async
test on asyncio and on trio.

SQLite gets a fresh file per test. PostgreSQL (`DATABASE_URL_TEST`) gets a fresh schema per
test, selected through the connection's `search_path`, and dropped afterwards. Locally the
PostgreSQL half is skipped when `DATABASE_URL_TEST` is unset; with `CI=true` it must run, so a
missing or unreachable database fails the test instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.clock import Clock
from engine.config import EngineConfig
from engine.system import EngineSystem
from persistence import open_store
from tests.postgres import fresh_postgres_schema, postgres_base_url
from tests.support import BACKENDS

CONCERT = "aurora"
DATE = "2030-01-15"
OTHER_DATE = "2030-01-16"
PRICE = 120
SEATS = 20


@pytest.fixture(scope="module", params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test here runs on each backend the engine supports."""
    backend: str = request.param
    return backend


def catalog() -> list[ConcertInfo]:
    return [
        ConcertInfo(
            CONCERT,
            "Aurora live",
            "Hall",
            (
                ConcertDateInfo(CONCERT, DATE, SEATS, PRICE),
                ConcertDateInfo(CONCERT, OTHER_DATE, SEATS, PRICE),
            ),
        )
    ]


def engine_config(**changes: object) -> EngineConfig:
    settings: dict[str, object] = {
        "hold_seconds": 300,
        "admit_batch": 100,
        "admit_interval_seconds": 10,
        "active_ttl_seconds": 600,
        "wallet_shards": 4,
        "checkout_shards": 4,
    }
    settings.update(changes)
    return EngineConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip("DATABASE_URL_TEST is not set")
    with fresh_postgres_schema(base) as url:
        yield url


@asynccontextmanager
async def engine_on(
    url: str, clock: Clock, config: EngineConfig | None = None
) -> AsyncIterator[EngineSystem]:
    """A whole engine on the SQL journal at `url`, recovered from it, with the test catalog."""
    async with open_store(url, seed_demo=False) as store:
        for concert in catalog():
            await store.add_concert(concert)
        system = EngineSystem(
            store.journal,
            config=config or engine_config(),
            clock=clock,
            catalog=await store.catalog(),
        )
        async with system.running():
            yield system


def durable_state(system: EngineSystem) -> dict[str, Any]:
    """Every actor's state as its snapshot shows it, in JSON form (tuples become lists)."""
    return {
        actor.key: json.loads(json.dumps(actor.state.to_snapshot()))
        for actor in system.all_actors()
    }
