"""Journal rows on the hot path: events encoded to JSON, and a whole group inserted in bulk.

The group-commit writer spends its time here, so it goes below SQLAlchemy's per-row parameter
processing: SQLite gets the driver's `executemany`, PostgreSQL gets `COPY ... FROM STDIN`. Both
run on the connection of the caller's SQLAlchemy transaction, so they commit or roll back with it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from engine.events import Event, from_payload, registered_kinds
from persistence.tables import journal_table

JournalRow = tuple[str, int, str, str, datetime]  # actor key, actor seq, kind, payload, time

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# The C scanner without `json.loads`' Python wrapper (a whitespace regex on every call): our own
# payloads have no surrounding whitespace. Two to three times faster over a million rows.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_FIELDS: dict[type[Event], tuple[str, ...]] = {}
_KINDS: dict[str, type[Event]] = {}

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


def decode_event(kind: str, payload: str) -> Event:
    """`engine.events.from_payload(kind, json.loads(payload))`, faster: a payload without
    arrays (most events) needs no tuple conversion and goes straight to the constructor."""
    values: dict[str, Any] = _scan(payload, 0)[0]
    cls = _KINDS.get(kind)
    if cls is None:
        _KINDS.update(registered_kinds())
        cls = _KINDS.get(kind)
    if cls is None:
        return from_payload(kind, values)  # raises the engine's unknown-kind error
    for value in values.values():
        if value.__class__ is list:
            return from_payload(kind, values)
    return cls(**values)


def decode_state(data: str) -> dict[str, Any]:
    state: dict[str, Any] = _scan(data, 0)[0]
    return state


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
