"""Catalog value types: what is on sale. Owned by persistence, read by the engine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from engine.views import OnSale

CONCERT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SEATS = 100_000  # seats of one date at most
# Seats over the dates of one request at most: 300 dates of MAX_SEATS would take gigabytes.
MAX_CONCERT_SEATS = 1_000_000


@dataclass(frozen=True, slots=True)
class ConcertDateInfo:
    concert_id: str
    date: str  # ISO yyyy-mm-dd
    seats: int
    price: int

    @property
    def key(self) -> str:
        return date_key(self.concert_id, self.date)


@dataclass(frozen=True, slots=True)
class ConcertInfo:
    concert_id: str
    title: str
    venue: str = ""
    dates: tuple[ConcertDateInfo, ...] = ()
    on_sale: OnSale | None = None  # its own on-sale and waiting room; None: the site-wide room


def date_key(concert_id: str, date: str) -> str:
    return f"date:{concert_id}:{date}"


def room_key(concert_id: str) -> str:
    """The actor key of a concert's own waiting room."""
    return f"room:{concert_id}"


class CatalogStore(Protocol):
    """Where the catalog is kept durably (persistence provides it)."""

    async def add_concert(self, concert: ConcertInfo) -> None:
        """Durably insert or update a concert and its dates (dates not named are kept)."""
        ...
