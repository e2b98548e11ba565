"""Journal rows on the hot path: events encoded to JSON, and a whole group inserted in bulk.

The group-commit writer spends its time here, so it goes below SQLAlchemy's per-row parameter
processing: SQLite gets the driver's `executemany`, PostgreSQL gets `COPY ... FROM STDIN`. Both
run on the connection of the caller's SQLAlchemy transaction, so they commit or roll back with it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from engine.events import Event
from persistence.tables import journal_table

JournalRow = tuple[str, int, str, str, datetime]  # actor key, actor seq, kind, payload, time

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_FIELDS: dict[type[Event], tuple[str, ...]] = {}

_COLUMNS = "actor_key, actor_seq, kind, payload, recorded_at"
_SQLITE_INSERT = f"INSERT INTO journal_event ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
_POSTGRES_COPY = f"COPY journal_event ({_COLUMNS}) FROM STDIN"
# How SQLAlchemy's SQLite DateTime stores an instant, so the ORM reads these rows back alike.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def encode_event(event: Event) -> str:
    """The JSON of `engine.events.to_payload(event)` (tuples become arrays, as json writes
    them), with the field names looked up once per event class instead of once per event."""
    names = _FIELDS.get(type(event))
    if names is None:
        assert dataclasses.is_dataclass(event)
        names = _FIELDS[type(event)] = tuple(f.name for f in dataclasses.fields(event))
    return _encode({name: getattr(event, name) for name in names})


def encode_state(state: dict[str, Any]) -> str:
    return _encode(state)


def insert_journal_rows(conn: Connection, rows: list[JournalRow]) -> None:
    """Insert `rows` inside the transaction `conn` is in."""
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        with dbapi.cursor() as cursor, cursor.copy(_POSTGRES_COPY) as copy:
            for row in rows:
                copy.write_row(row)
    elif conn.dialect.name == "sqlite":
        cursor = dbapi.cursor()
        try:
            cursor.executemany(
                _SQLITE_INSERT,
                [(k, s, kind, p, at.strftime(_SQLITE_TIME)) for k, s, kind, p, at in rows],
            )
        finally:
            cursor.close()
    else:
        columns = ("actor_key", "actor_seq", "kind", "payload", "recorded_at")
        conn.execute(insert(journal_table), [dict(zip(columns, row, strict=True)) for row in rows])
