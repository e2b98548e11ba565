"""The hot-path row codec and bulk insert agree with the engine's codec and the ORM."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlmodel import Session, select

from engine.domain.checkout import CheckoutStarted
from engine.domain.seat_map import SeatHeld, SeatsLocked
from engine.domain.waiting_room import Admitted
from engine.domain.wallet import Charged
from engine.events import Event, from_payload, to_payload
from engine.journal import JournalRecord
from persistence import open_store
from persistence.rows import encode_event
from persistence.tables import JournalEvent, journal_table

pytestmark = pytest.mark.anyio

EVENTS: list[Event] = [
    Charged("zoë", 10, None),
    SeatHeld(3, "alice", "c.2030-01-01.3.1", 1_700_000_300.25),
    SeatsLocked("pay_1", "alice", (3, 4)),
    CheckoutStarted("pay_1", "alice", ("c.2030-01-01.3.1", "c.2030-01-01.4.2"), "key"),
    Admitted((1, 2, 3), 1_700_000_000.0, 1_700_000_600.0),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_encoded_events_are_the_engine_payload_and_decode_back(event: Event) -> None:
    payload = json.loads(encode_event(event))
    assert payload == to_payload(event)
    assert from_payload(event.kind, payload) == event


async def test_bulk_inserted_rows_read_back_through_the_orm(database_url: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with open_store(database_url, seed_demo=False) as store:
        records = [JournalRecord("mixed", n, e) for n, e in enumerate(EVENTS, start=1)]
        await store.journal.append(records).wait()
        with Session(store.engine) as session:
            rows = session.exec(select(JournalEvent).order_by(journal_table.c.seq)).all()
    assert [(r.actor_key, r.actor_seq, r.kind) for r in rows] == [
        ("mixed", n, e.kind) for n, e in enumerate(EVENTS, start=1)
    ]
    assert [from_payload(r.kind, json.loads(r.payload)) for r in rows] == EVENTS
    seqs = [r.seq or 0 for r in rows]
    assert all(a < b for a, b in pairwise(seqs))
    recorded = rows[0].recorded_at
    if recorded.tzinfo is None:  # SQLite keeps the UTC wall time without its zone
        recorded = recorded.replace(tzinfo=UTC)
    assert before <= recorded <= datetime.now(UTC) + timedelta(seconds=1)
