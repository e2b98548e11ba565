"""Reading durable history back: per actor, the latest snapshot and the events after it.

Each actor's tail is one range read on the unique `(actor_key, actor_seq)` index, so recovery
with snapshots reads only the tails, never the whole journal. The set of actor keys is found
with a skip scan over that index (a recursive query that jumps from key to key).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, text

from engine.events import from_payload
from engine.journal import ActorHistory, JournalRecord, Snapshot

_decode = json.JSONDecoder().decode

_ALL_KEYS = text(
    """
    WITH RECURSIVE k(actor_key) AS (
        SELECT MIN(actor_key) FROM journal_event
        UNION ALL
        SELECT (SELECT MIN(actor_key) FROM journal_event WHERE actor_key > k.actor_key)
        FROM k WHERE k.actor_key IS NOT NULL
    )
    SELECT actor_key FROM k WHERE actor_key IS NOT NULL
    """
)
_ALL_SNAPSHOTS = text("SELECT actor_key, actor_seq, state FROM snapshot")
_ONE_SNAPSHOT = text("SELECT actor_key, actor_seq, state FROM snapshot WHERE actor_key = :key")
_TAIL = text(
    "SELECT actor_seq, kind, payload FROM journal_event"
    " WHERE actor_key = :key AND actor_seq > :after ORDER BY actor_seq"
)


def load_histories(engine: Engine, keys: list[str] | None) -> dict[str, ActorHistory]:
    """Durable history of `keys` (of every actor when None); actors with none are left out."""
    with engine.connect() as conn:
        snapshots = _snapshots(conn, keys)
        if keys is None:
            keys = sorted({*snapshots, *conn.execute(_ALL_KEYS).scalars()})
        histories: dict[str, ActorHistory] = {}
        for key in keys:
            snapshot = snapshots.get(key)
            after = snapshot.actor_seq if snapshot is not None else 0
            rows = conn.execute(_TAIL, {"key": key, "after": after})
            records = [
                JournalRecord(key, seq, from_payload(kind, _decode(payload)))
                for seq, kind, payload in rows
            ]
            if snapshot is not None or records:
                histories[key] = ActorHistory(snapshot=snapshot, records=records)
        return histories


def _snapshots(conn: Connection, keys: list[str] | None) -> dict[str, Snapshot]:
    if keys is None:
        rows: list[Any] = list(conn.execute(_ALL_SNAPSHOTS))
    else:
        rows = [row for key in keys for row in conn.execute(_ONE_SNAPSHOT, {"key": key})]
    return {key: Snapshot(key, seq, _decode(state)) for key, seq, state in rows}
