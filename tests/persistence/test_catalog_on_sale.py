"""A concert's on-sale in the catalog: stored, read back, kept when the concert is sent again
without one, and the column added to a database of the schema before it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.views import OnSale
from persistence.catalog import read_catalog, upsert_concert
from persistence.database import connect, ensure_schema

ON_SALE = OnSale(1_900_000_000.0, 900.0, 50, 5.0, 200, 600.0, proof_of_work=8)
GIG = ConcertInfo("gig", "Gig", "Club", (ConcertDateInfo("gig", "2027-03-01", 10, 5),), ON_SALE)


def test_an_on_sale_is_stored_and_kept_when_the_concert_comes_again_without_one(
    tmp_path: Path,
) -> None:
    database = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ensure_schema(database)
    upsert_concert(database, GIG)
    assert read_catalog(database) == [GIG]
    upsert_concert(database, ConcertInfo("gig", "Gig II", "Club", ()))
    (again,) = read_catalog(database)
    assert (again.title, again.on_sale) == ("Gig II", ON_SALE)


def test_a_database_of_schema_2_gains_the_on_sale_column(tmp_path: Path) -> None:
    database = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ensure_schema(database)
    with Session(database) as session:
        session.connection().execute(text("ALTER TABLE concert DROP COLUMN on_sale"))
        session.connection().execute(text("DELETE FROM schema_version WHERE version = 3"))
        session.commit()
    assert ensure_schema(database) == 3
    upsert_concert(database, GIG)
    assert read_catalog(database) == [GIG]
