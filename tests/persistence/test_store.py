"""Opening a store: schema creation and versioning, the demo catalog, catalog upserts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from engine.catalog import ConcertDateInfo, ConcertInfo
from persistence import open_store
from persistence.database import SchemaTooNew, normalize_url
from persistence.tables import SCHEMA_VERSION

pytestmark = pytest.mark.anyio


async def test_fresh_database_gets_the_schema_version_and_a_demo_catalog(database_url: str) -> None:
    async with open_store(database_url, demo_seats=30) as store:
        concerts = await store.catalog()
        with store.engine.connect() as conn:
            versions = conn.execute(text("SELECT version FROM schema_version")).scalars().all()
    assert versions == [SCHEMA_VERSION]
    assert len(concerts) >= 1
    dates = [info for concert in concerts for info in concert.dates]
    assert dates
    tomorrow = date.today() + timedelta(days=1)
    assert min(date.fromisoformat(info.date) for info in dates) == tomorrow
    assert all(info.seats == 30 and info.price > 0 for info in dates)


async def test_reopening_keeps_the_catalog_and_does_not_seed_again(database_url: str) -> None:
    async with open_store(database_url) as store:
        first = await store.catalog()
    async with open_store(database_url, demo_seats=7) as store:
        again = await store.catalog()
        with store.engine.connect() as conn:
            versions = conn.execute(text("SELECT count(*) FROM schema_version")).scalar_one()
    assert again == first
    assert versions == 1


async def test_without_seeding_the_catalog_starts_empty(database_url: str) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        assert await store.catalog() == []


async def test_add_concert_is_an_upsert_that_survives_a_restart(database_url: str) -> None:
    first = ConcertInfo("nova", "Nova", "Arena", (ConcertDateInfo("nova", "2030-03-01", 10, 50),))
    renamed = ConcertInfo(
        "nova", "Nova (extra date)", "Arena", (ConcertDateInfo("nova", "2030-03-02", 12, 60),)
    )
    async with open_store(database_url, seed_demo=False) as store:
        await store.add_concert(first)
        await store.add_concert(renamed)
    async with open_store(database_url, seed_demo=False) as store:
        assert await store.catalog() == [
            ConcertInfo(
                "nova",
                "Nova (extra date)",
                "Arena",
                (
                    ConcertDateInfo("nova", "2030-03-01", 10, 50),
                    ConcertDateInfo("nova", "2030-03-02", 12, 60),
                ),
            )
        ]


async def test_a_date_of_another_concert_is_refused(database_url: str) -> None:
    odd = ConcertInfo("nova", "Nova", "", (ConcertDateInfo("other", "2030-03-01", 10, 50),))
    async with open_store(database_url, seed_demo=False) as store:
        with pytest.raises(ValueError):
            await store.add_concert(odd)
        assert await store.catalog() == []


async def test_a_database_from_a_newer_version_is_refused(database_url: str) -> None:
    async with open_store(database_url) as store:
        with store.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO schema_version (version, applied_at) VALUES (:v, :at)"),
                {"v": SCHEMA_VERSION + 1, "at": date.today()},
            )
    with pytest.raises(SchemaTooNew):
        async with open_store(database_url):
            pass


def test_plain_postgresql_urls_use_the_psycopg_driver() -> None:
    assert normalize_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///./x.db") == "sqlite:///./x.db"
