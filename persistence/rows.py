"""Journal rows on the hot path: events encoded to JSON, and the writer's group insert.

The group-commit writer's thread competes with the event loop for the GIL, and every time it
gives the GIL up (around each call into the database) it may wait a whole switch interval to
get it back while the loop is busy. So a group goes in with as few calls as possible, on a
DB-API connection the writer keeps for itself (no SQLAlchemy transaction per group):

- SQLite: one `INSERT ... SELECT FROM json_each(?)` of the whole group in autocommit mode, so
  parsing, inserting and the durable commit are one statement: one trip without the GIL;
- PostgreSQL: `COPY ... FROM STDIN`, then commit.

A group with snapshots is one explicit transaction (records first, then the snapshots).
"""

from __future__ import annotations

import contextlib
import json
import json.scanner
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from engine.events import Event, from_payload, registered_kinds
from engine.journal import JournalRecord
from persistence.deadline import WATCHDOG, Abort, abort_for
from persistence.lease import Fenced, Lease

# Seconds a group commit (or a probe) may block before its connection is cut: far above a
# commit's time under load, far below a client's patience while the database is down.
COMMIT_DEADLINE = 5.0

EncodedRow = tuple[str, int, str, str]  # actor key, actor seq, kind, payload (JSON)
SnapshotRow = tuple[str, int, str]  # actor key, actor seq, state (JSON)

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# The C scanner without `json.loads`' Python wrapper (a whitespace regex on every call): our own
# payloads have no surrounding whitespace. Two to three times faster over a million rows.
_DECODER: Any = json.JSONDecoder()  # typeshed types the scanner's context too narrowly
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)
_KINDS: dict[str, type[Event]] = {}

_COLUMNS = "actor_key, actor_seq, kind, payload, recorded_at"
# `ORDER BY key` (the array index) keeps the global seq in append order.
_SQLITE_INSERT = (
    f"INSERT INTO journal_event ({_COLUMNS})"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ? FROM json_each(?) ORDER BY key"
)
_SQLITE_INSERT_FENCED = (
    f"INSERT INTO journal_event ({_COLUMNS})"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ? FROM json_each(?)"
    " WHERE EXISTS (SELECT 1 FROM shard_lease WHERE name = ? AND epoch = ?) ORDER BY key"
)
_POSTGRES_COPY = f"COPY journal_event ({_COLUMNS}) FROM STDIN"
_LEASE = "SELECT epoch FROM shard_lease WHERE name = {p}"
_UPSERT_SNAPSHOT = (
    "INSERT INTO snapshot (actor_key, actor_seq, state, recorded_at) VALUES ({p}, {p}, {p}, {p})"
    " ON CONFLICT (actor_key) DO UPDATE SET actor_seq = excluded.actor_seq,"
    " state = excluded.state, recorded_at = excluded.recorded_at"
)
# How SQLAlchemy's SQLite DateTime stores an instant, so the ORM reads these rows back alike.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def encode_event(event: Event) -> str:
    """The JSON of `engine.events.to_payload(event)`: orjson writes a dataclass's fields
    (tuples as arrays) itself, several times faster than making the dict for `json`."""
    return orjson.dumps(event).decode()


def encode_records(records: Sequence[JournalRecord]) -> list[EncodedRow]:
    return [
        (record.actor_key, record.actor_seq, record.event.kind, encode_event(record.event))
        for record in records
    ]


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


def _nothing() -> None:
    pass


class GroupWriter:
    """The journal writer's own database connection, and one group written per call.

    Used from one worker thread at a time. After a failed write the connection is closed (which
    rolls back whatever the group had written) and the next write opens a fresh one.
    """

    def __init__(self, engine: Engine, lease: Lease | None = None) -> None:
        self.engine = engine
        self.lease = lease
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"no journal writer for {self.dialect}")
        self._dbapi: Any = None
        self._abort: Abort = _nothing

    def write(self, rows: list[EncodedRow], snapshots: list[SnapshotRow], at: datetime) -> None:
        """Insert `rows` (in order) and upsert `snapshots` durably, all or nothing; a write
        still blocked after `COMMIT_DEADLINE` has its connection cut and raises."""
        dbapi = self._connection()
        try:
            with WATCHDOG.guard(COMMIT_DEADLINE, self._abort):
                if self.dialect == "sqlite":
                    _write_sqlite(dbapi, rows, snapshots, at, self.lease)
                else:
                    _write_postgres(dbapi, rows, snapshots, at, self.lease)
        except BaseException:
            self.close()
            raise

    def probe(self) -> None:
        """Raise unless the database answers a trivial query within `COMMIT_DEADLINE`."""
        dbapi = self._connection()
        try:
            with WATCHDOG.guard(COMMIT_DEADLINE, self._abort):
                p = "?" if self.dialect == "sqlite" else "%s"
                if self.lease is None:
                    dbapi.execute("SELECT 1").fetchall()
                else:
                    _check_lease(dbapi.execute(_LEASE.format(p=p), (self.lease.name,)), self.lease)
                if self.dialect == "postgresql":
                    dbapi.rollback()  # leave no transaction open on the writer's connection
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        dbapi, self._dbapi = self._dbapi, None
        if dbapi is not None:
            # A broken connection may fail to close; it is dropped either way.
            with contextlib.suppress(Exception):
                dbapi.close()

    def _connection(self) -> Any:
        if self._dbapi is None:
            # Through the engine's pool so the connection gets the same settings (SQLite's
            # pragmas), then detached from it: it is ours until `close`.
            fairy = self.engine.raw_connection()
            fairy.detach()
            dbapi: Any = fairy.dbapi_connection
            if self.dialect == "sqlite":
                dbapi.isolation_level = None  # autocommit: transactions only where we say
            self._abort = abort_for(dbapi)
            self._dbapi = dbapi
        return self._dbapi


def _write_sqlite(
    dbapi: Any,
    rows: list[EncodedRow],
    snapshots: list[SnapshotRow],
    at: datetime,
    lease: Lease | None,
) -> None:
    stamp = at.strftime(_SQLITE_TIME)
    if not snapshots:
        if not rows:
            return
        if lease is None:
            dbapi.execute(_SQLITE_INSERT, (stamp, _group(rows)))  # its own transaction
            return
        # One statement still: the rows go in only while the lease has our epoch.
        inserted = dbapi.execute(
            _SQLITE_INSERT_FENCED, (stamp, _group(rows), lease.name, lease.epoch)
        ).rowcount
        if inserted != len(rows):
            raise Fenced(f"the lease {lease.name} was taken over: nothing was committed")
        return
    dbapi.execute("BEGIN IMMEDIATE")
    try:
        if lease is not None:
            _check_lease(dbapi.execute(_LEASE.format(p="?"), (lease.name,)), lease)
        if rows:
            dbapi.execute(_SQLITE_INSERT, (stamp, _group(rows)))
        dbapi.executemany(
            _UPSERT_SNAPSHOT.format(p="?"),
            [(key, seq, state, stamp) for key, seq, state in snapshots],
        )
    except BaseException:
        dbapi.execute("ROLLBACK")
        raise
    dbapi.execute("COMMIT")


def _check_lease(cursor: Any, lease: Lease) -> None:
    row = cursor.fetchone()
    if row is None or row[0] != lease.epoch:
        raise Fenced(f"the lease {lease.name} was taken over: nothing was committed")


def _group(rows: list[EncodedRow]) -> str:
    """The group as one JSON array of rows, for `json_each`."""
    return orjson.dumps(rows).decode()


def _write_postgres(
    dbapi: Any,
    rows: list[EncodedRow],
    snapshots: list[SnapshotRow],
    at: datetime,
    lease: Lease | None,
) -> None:
    with dbapi.cursor() as cursor:
        if lease is not None:
            # FOR SHARE: a new owner's epoch bump waits for this commit, and after it this
            # check fails, so no group of a fenced owner commits.
            _check_lease(cursor.execute(_LEASE.format(p="%s") + " FOR SHARE", (lease.name,)), lease)
        if rows:
            with cursor.copy(_POSTGRES_COPY) as copy:
                for key, seq, kind, payload in rows:
                    copy.write_row((key, seq, kind, payload, at))
        if snapshots:
            cursor.executemany(
                _UPSERT_SNAPSHOT.format(p="%s"),
                [(key, seq, state, at) for key, seq, state in snapshots],
            )
    dbapi.commit()
