"""The catalog on disk: concerts and their dates (seat count, price), and the demo catalog.

The engine reads the catalog once at start and is told of additions; these rows are written
durably before a concert is put on sale, so a restart finds every date actor again.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.views import OnSale
from persistence.tables import ConcertDateRow, ConcertRow

DEMO_CONCERT_ID = "aurora-2027"
DEMO_DATES = 3
DEMO_PRICE = 120


def read_catalog(engine: Engine) -> list[ConcertInfo]:
    with Session(engine) as session:
        concerts = session.exec(select(ConcertRow).order_by(ConcertRow.concert_id)).all()
        dates = session.exec(
            select(ConcertDateRow).order_by(ConcertDateRow.concert_id, ConcertDateRow.date)
        ).all()
    by_concert: dict[str, list[ConcertDateInfo]] = {}
    for row in dates:
        by_concert.setdefault(row.concert_id, []).append(
            ConcertDateInfo(row.concert_id, row.date, row.seats, row.price)
        )
    return [
        ConcertInfo(
            c.concert_id,
            c.title,
            c.venue,
            tuple(by_concert.get(c.concert_id, ())),
            on_sale_of(c.on_sale),
        )
        for c in concerts
    ]


def on_sale_of(text: str | None) -> OnSale | None:
    """The `OnSale` of a `concert.on_sale` column (its fields by name, as JSON)."""
    return OnSale(**json.loads(text)) if text else None


def on_sale_text(on_sale: OnSale) -> str:
    return json.dumps(dataclasses.asdict(on_sale))


def upsert_concert(engine: Engine, concert: ConcertInfo) -> None:
    """Insert or update the concert and each of its dates; dates not named are kept, and so
    is its on-sale when none is given."""
    with Session(engine) as session:
        row = session.get(ConcertRow, concert.concert_id)
        on_sale = on_sale_text(concert.on_sale) if concert.on_sale is not None else None
        if row is None:
            row = ConcertRow(concert_id=concert.concert_id, title=concert.title, on_sale=on_sale)
        elif on_sale is not None:
            row.on_sale = on_sale
        row.title, row.venue = concert.title, concert.venue
        session.add(row)
        session.flush()  # the parent row first: concert_date references it
        for info in concert.dates:
            if info.concert_id != concert.concert_id:
                raise ValueError(f"date {info.key} does not belong to {concert.concert_id}")
            session.merge(
                ConcertDateRow(
                    concert_id=info.concert_id, date=info.date, seats=info.seats, price=info.price
                )
            )
        session.commit()


def demo_catalog(seats: int, today: date | None = None) -> ConcertInfo:
    """One concert on the `DEMO_DATES` days from tomorrow on, `seats` seats each."""
    start = (today or date.today()) + timedelta(days=1)
    return ConcertInfo(
        DEMO_CONCERT_ID,
        "Aurora — live in concert",
        "Main Hall",
        tuple(
            ConcertDateInfo(
                DEMO_CONCERT_ID, (start + timedelta(days=n)).isoformat(), seats, DEMO_PRICE
            )
            for n in range(DEMO_DATES)
        ),
    )


def seed_demo_if_empty(engine: Engine, seats: int) -> bool:
    with Session(engine) as session:
        if session.exec(select(ConcertRow.concert_id).limit(1)).first() is not None:
            return False
    upsert_concert(engine, demo_catalog(seats))
    return True
