"""Reading durable history back: per actor, the latest snapshot and the events after it.

Recovery reads up to millions of rows, so this module reads them with the driver's own cursor
(no per-row SQLAlchemy processing) and with the cyclic garbage collector paused: building
millions of small objects otherwise triggers full collections that cost as much as decoding.
After a full load (the start-up recovery) the loaded objects are moved out of the collector's
sight with `gc.freeze()`: the engine replays them right away, and every full collection during
that replay would otherwise walk all of them again (it halves the replay of a million events).
They hold no reference cycles, so reference counting frees them as usual once replayed.

Two ways to read the tails after the snapshots, chosen by their size (known exactly, since an
actor's sequence numbers have no gaps): small tails are range reads on the unique
`(actor_key, actor_seq)` index; when they add up to a good part of the journal, one scan in
commit order is cheaper than that many index lookups, and rows a snapshot covers are skipped
before being decoded. The actor keys and their last sequence numbers come from a skip scan
over that index (a recursive query that jumps from key to key), not from a full scan.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

import engine.domain  # noqa: F401  (registers every event kind for decoding)
from engine.journal import ActorHistory, JournalRecord, Snapshot
from persistence.deadline import WATCHDOG, abort_for
from persistence.rows import decode_event, decode_state

# Scan the whole journal once the tails add up to more than this share of it.
SCAN_SHARE = 0.3
FETCH = 20_000
LOAD_DEADLINE = 5.0  # seconds an actor's reload may block on the database before it is cut

_LAST_SEQS = """
    WITH RECURSIVE k(actor_key) AS (
        SELECT MIN(actor_key) FROM journal_event
        UNION ALL
        SELECT (SELECT MIN(actor_key) FROM journal_event WHERE actor_key > k.actor_key)
        FROM k WHERE k.actor_key IS NOT NULL
    )
    SELECT actor_key,
           (SELECT MAX(actor_seq) FROM journal_event j WHERE j.actor_key = k.actor_key)
    FROM k WHERE actor_key IS NOT NULL
"""
_ALL_SNAPSHOTS = "SELECT actor_key, actor_seq, state FROM snapshot"
_ONE_SNAPSHOT = "SELECT actor_key, actor_seq, state FROM snapshot WHERE actor_key = {p}"
_TAIL = (
    "SELECT actor_seq, kind, payload FROM journal_event"
    " WHERE actor_key = {p} AND actor_seq > {p} ORDER BY actor_seq"
)
_EVERYTHING = "SELECT actor_key, actor_seq, kind, payload FROM journal_event ORDER BY seq"


def load_histories(
    engine: Engine, keys: list[str] | None, snapshots: bool = True
) -> dict[str, ActorHistory]:
    """Durable history of `keys` (of every actor when None); actors with none are left out.
    Without `snapshots`, every event of each actor is read and no snapshot (for an actor
    that cannot read its snapshot).

    A load of some keys (an actor rebuilding after a failed commit) that is still blocked
    after `LOAD_DEADLINE` has its connection cut and raises, to be retried; the load of every
    key (recovery at start) may take as long as the journal is large.
    """
    # The driver's placeholder: `?` for sqlite3, `%s` for psycopg.
    p = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    with _collector_paused(freeze=keys is None), engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        cursor: Any = dbapi.cursor()
        deadline: contextlib.AbstractContextManager[None] = (
            WATCHDOG.guard(LOAD_DEADLINE, abort_for(dbapi))
            if keys is not None
            else contextlib.nullcontext()
        )
        try:
            with deadline:
                return _load(cursor, p, keys, snapshots)
        except BaseException:
            # The driver's error does not pass through SQLAlchemy, which would otherwise put
            # a broken connection (cut by its deadline, or whose server went away) back in
            # the pool for the next load to fail on.
            conn.invalidate()
            raise
        finally:
            with contextlib.suppress(Exception):  # a cut connection may fail to close a cursor
                cursor.close()


def _load(
    cursor: Any, p: str, keys: list[str] | None, with_snapshots: bool
) -> dict[str, ActorHistory]:
    if not with_snapshots:
        rows = []
    elif keys is None:
        cursor.execute(_ALL_SNAPSHOTS)
        rows = cursor.fetchall()
    else:
        rows = []
        for key in keys:
            cursor.execute(_ONE_SNAPSHOT.format(p=p), (key,))
            rows += cursor.fetchall()
    snapshots = {k: Snapshot(k, seq, decode_state(state)) for k, seq, state in rows}
    if keys is None:
        cursor.execute(_LAST_SEQS)
        last = dict(cursor.fetchall())
        covered = {k: s.actor_seq for k, s in snapshots.items()}
        tails = sum(seq - covered.get(k, 0) for k, seq in last.items())
        if tails > SCAN_SHARE * sum(last.values()):
            return _scan_everything(cursor, snapshots, covered)
        keys = sorted({*snapshots, *last})
    return _read_tails(cursor, p, keys, snapshots)


def _read_tails(
    cursor: Any, p: str, keys: list[str], snapshots: dict[str, Snapshot]
) -> dict[str, ActorHistory]:
    histories: dict[str, ActorHistory] = {}
    tail = _TAIL.format(p=p)
    for key in keys:
        snapshot = snapshots.get(key)
        cursor.execute(tail, (key, snapshot.actor_seq if snapshot is not None else 0))
        records = [
            JournalRecord(key, seq, decode_event(kind, payload))
            for seq, kind, payload in cursor.fetchall()
        ]
        if snapshot is not None or records:
            histories[key] = ActorHistory(snapshot=snapshot, records=records)
    return histories


def _scan_everything(
    cursor: Any, snapshots: dict[str, Snapshot], covered: dict[str, int]
) -> dict[str, ActorHistory]:
    histories = {key: ActorHistory(snapshot=snapshot) for key, snapshot in snapshots.items()}
    cursor.execute(_EVERYTHING)
    while rows := cursor.fetchmany(FETCH):
        for key, seq, kind, payload in rows:
            if seq > covered.get(key, 0):
                history = histories.get(key)
                if history is None:
                    history = histories[key] = ActorHistory()
                history.records.append(JournalRecord(key, seq, decode_event(kind, payload)))
    return histories


@contextmanager
def _collector_paused(*, freeze: bool) -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if freeze:
            gc.freeze()
    finally:
        if was_enabled:
            gc.enable()
