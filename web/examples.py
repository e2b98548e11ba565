"""What the examples of `/openapi.json` name: a concert, a date and a seat of the live catalog.

The demo catalog is seeded relative to the day it was created and an operator adds concerts
at any time, so no fixed value can be a working example. The service builds its document
again whenever the sample changes (web/service.py), and an example request (a hold, a seat
map, an actor's state) reaches a real concert, date and free seat.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.catalog import date_key
from engine.face import Engine


@dataclass(frozen=True, slots=True)
class Sample:
    concert_id: str
    date: str
    seat: int

    @property
    def actor_key(self) -> str:
        return date_key(self.concert_id, self.date)


# Before the catalog is read (the service starting) and when nothing is left on sale: values
# of the right shape, naming the demo concert.
PLACEHOLDER = Sample("aurora-2027", "2027-01-15", 1)


def sample_of(engine: Engine | None) -> Sample:
    """The first free seat of the first date with one, in the engine's catalog order;
    `PLACEHOLDER` without an engine or a free seat."""
    if engine is None:
        return PLACEHOLDER
    for concert in engine.concerts():
        for info in sorted(concert.dates, key=lambda d: d.date):
            seat_map = engine.seat_map(concert.concert_id, info.date)
            free = seat_map.available if seat_map is not None else ()
            if free:
                return Sample(concert.concert_id, info.date, free[0])
    return PLACEHOLDER
