"""Snapshots written by every released format load into the state their events replay to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.journal import ActorHistory, JournalRecord, Snapshot
from tests.engine.snapshots import structure
from tests.engine.snapshots.fixtures import events_of, new_actor

FIXTURES = sorted((Path(__file__).parent / "snapshots").glob("v*/*.json"))


def test_every_state_type_has_fixtures_of_the_format_without_versions() -> None:
    assert {p.stem for p in FIXTURES if p.parent.name == "v0"} == {
        "seat_map",
        "waiting_room",
        "wallets",
        "payments",
    }


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_released_snapshot_and_its_tail_rebuild_the_state_a_full_replay_does(
    path: Path,
) -> None:
    data = json.loads(path.read_text())
    key, covered = data["actor"], data["snapshot_seq"]
    records = [JournalRecord(key, seq, event) for seq, event in enumerate(events_of(data), 1)]
    replayed = new_actor(path.stem)
    replayed.restore(ActorHistory(records=records))
    restored = new_actor(path.stem)
    restored.restore(ActorHistory(Snapshot(key, covered, data["snapshot"]), records[covered:]))
    assert restored.seq == replayed.seq == len(records)
    assert structure(restored.state) == structure(replayed.state)
    assert restored.state.to_snapshot() == replayed.state.to_snapshot()
