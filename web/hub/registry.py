"""The open websockets, indexed so that no event scans every connection.

By token (its number, and its concert for a concert's room: queue events), by user (hold
events) and by followed date (seat events): an admission of 100 users touches 100 entries
whatever the number of connected clients. `waiting` holds the tokens of connections whose
token waits in the queue or its pre-queue (the rank pass reads only those).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable
from typing import TypeVar

from web.hub.connection import Connection, DateKey, TokenKey

K = TypeVar("K", bound=Hashable)


class Registry:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.by_seq: dict[TokenKey, set[Connection]] = {}
        self.by_user: dict[str, set[Connection]] = {}
        self.by_date: dict[DateKey, set[Connection]] = {}
        self.waiting: set[TokenKey] = set()  # tokens WAITING or PRE_QUEUE
        self._unique = itertools.count()

    @property
    def count(self) -> int:
        return len(self.connections)

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.by_seq.setdefault(conn.seq, set()).add(conn)
        self.by_user.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        self.connections.discard(conn)
        _discard(self.by_seq, conn.seq, conn)
        _discard(self.by_user, conn.user_id, conn)
        if conn.seq not in self.by_seq:
            self.waiting.discard(conn.seq)
        for key in conn.dates:
            _discard(self.by_date, key, conn)

    def follow(self, conn: Connection, date_key: DateKey) -> None:
        conn.dates.add(date_key)
        self.by_date.setdefault(date_key, set()).add(conn)

    def unfollow(self, conn: Connection, date_key: DateKey) -> None:
        conn.dates.discard(date_key)
        _discard(self.by_date, date_key, conn)

    def unique(self) -> int:
        """A key no other message has: for messages that must never be coalesced."""
        return next(self._unique)

    def send(self, conns: Iterable[Connection], text: str) -> None:
        """Push `text` to each of `conns`, never coalesced."""
        for conn in conns:
            conn.push(self.unique(), text)


def _discard(index: dict[K, set[Connection]], key: K, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]
