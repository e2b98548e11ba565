"""Fixtures for engine tests: a whole engine on a manual clock and an in-memory journal, each
async test on asyncio and on trio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.clock import ManualClock
from engine.config import EngineConfig
from engine.journal import MemoryJournal
from engine.system import EngineSystem
from tests.commands import join
from tests.support import BACKENDS, manual_clock

CONCERT = "aurora"
DATE = "2027-01-15"
OTHER_DATE = "2027-01-16"
PRICE = 120


@pytest.fixture(scope="module", params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test here runs on each backend the engine supports."""
    backend: str = request.param
    return backend


def catalog(seats: int = 50) -> list[ConcertInfo]:
    return [
        ConcertInfo(
            CONCERT,
            "Aurora live",
            "Hall",
            (
                ConcertDateInfo(CONCERT, DATE, seats, PRICE),
                ConcertDateInfo(CONCERT, OTHER_DATE, seats, PRICE),
            ),
        )
    ]


@pytest.fixture
def clock() -> ManualClock:
    return manual_clock()


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def config() -> EngineConfig:
    return EngineConfig(
        hold_seconds=300,
        admit_batch=100,
        admit_interval_seconds=10,
        active_ttl_seconds=600,
        wallet_shards=4,
        checkout_shards=4,
    )


@pytest.fixture
async def system(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> AsyncIterator[EngineSystem]:
    engine = EngineSystem(journal, config=config, clock=clock, catalog=catalog())
    async with engine.running():
        yield engine


async def admitted(system: EngineSystem, clock: ManualClock, *users: str) -> None:
    """Join every user and let one admission pass."""
    for user in users:
        await join(system, user)
    await clock.advance(system.config.admit_interval_seconds)
