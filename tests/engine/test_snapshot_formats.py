"""Snapshot formats: versions written and read, older ones upgraded, unknown ones refused, and
the snapshots of every released format loading into the state their events replay to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.domain import checkout, concert_room, seat_map, waiting_room, wallet
from engine.journal import ActorHistory, JournalRecord, Snapshot
from engine.snapshots import SnapshotFormat, SnapshotRefused, columns, rows
from tests.engine.snapshots import structure
from tests.engine.snapshots.fixtures import (
    CONCERT_ROOM,
    PAYMENTS,
    SEAT_MAP,
    WAITING_ROOM,
    WALLETS,
    events_of,
    new_actor,
)

FIXTURES = sorted((Path(__file__).parent / "snapshots").glob("v*/*.json"))
FORMATS = {
    SEAT_MAP: seat_map.SNAPSHOT,
    WAITING_ROOM: waiting_room.SNAPSHOT,
    WALLETS: wallet.SNAPSHOT,
    PAYMENTS: checkout.SNAPSHOT,
    CONCERT_ROOM: concert_room.SNAPSHOT,
}
# The first version of a state type that came after versions did (no version 0 to freeze).
FIRST_VERSION = {CONCERT_ROOM: 1}


@pytest.mark.parametrize("state_type", sorted(FORMATS))
def test_every_version_of_every_state_type_is_frozen_in_a_fixture(state_type: str) -> None:
    """A format change bumps the version and freezes the new format (see `fixtures`)."""
    versions = {
        json.loads(p.read_text())["snapshot"].get("version", 0)
        for p in FIXTURES
        if p.stem == state_type
    }
    first = FIRST_VERSION.get(state_type, 0)
    assert versions == set(range(first, FORMATS[state_type].version + 1))


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
    version = data["snapshot"].get("version", 0)
    assert without_figures_before(version, path.stem, structure(restored.state)) == (
        without_figures_before(version, path.stem, structure(replayed.state))
    )
    assert without_figures_before(version, path.stem, restored.state.to_snapshot()) == (
        without_figures_before(version, path.stem, replayed.state.to_snapshot())
    )


# Figures of waits (join times, recent waits) that the waiting room's snapshots before version
# 2 did not keep: a snapshot of theirs restores without them. No rule reads them.
WAIT_FIGURES = ("joined_at", "waits", "dropped_waits")


def without_figures_before(version: int, state_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    if state_type != WAITING_ROOM or version >= 2:
        return fields
    kept = {name: value for name, value in fields.items() if name not in WAIT_FIGURES}
    if isinstance(kept.get("tokens"), dict):
        kept["tokens"] = {k: v for k, v in kept["tokens"].items() if k != "joined_at"}
    return kept


@pytest.mark.parametrize("state_type", sorted(FORMATS))
def test_every_state_type_writes_its_version_and_reads_it_back(state_type: str) -> None:
    state = new_actor(state_type).state
    snapshot = state.to_snapshot()
    assert snapshot["version"] == FORMATS[state_type].version
    copy = new_actor(state_type)
    copy.restore(ActorHistory(Snapshot(copy.key, 0, snapshot)))
    assert copy.state.to_snapshot() == snapshot


FORMAT = SnapshotFormat("test", 2, {0: lambda d: {"b": d["a"]}, 1: lambda d: {"c": d["b"] + 1}})


def test_an_older_version_is_upgraded_one_version_at_a_time() -> None:
    assert FORMAT.read({"a": 1}) == {"c": 2}  # no version: version 0
    assert FORMAT.read({"version": 1, "b": 5}) == {"c": 6}
    assert FORMAT.read({"version": 2, "c": 7}) == {"version": 2, "c": 7}
    assert FORMAT.write(c=8) == {"version": 2, "c": 8}


@pytest.mark.parametrize("version", [3, 99, "2", None, 1.0, True])
def test_a_newer_or_malformed_version_is_refused_naming_it(version: object) -> None:
    with pytest.raises(SnapshotRefused, match=f"test snapshot of version {version!r}"):
        FORMAT.read({"version": version, "c": 1})


def test_a_version_without_an_upgrade_path_is_refused() -> None:
    skipping = SnapshotFormat("test", 2, {1: lambda d: d})
    with pytest.raises(SnapshotRefused, match="version 0; this release cannot upgrade it"):
        skipping.read({"a": 1})


def test_tables_name_every_column_and_refuse_ragged_rows() -> None:
    table = columns([(1, "a"), (2, "b")], ("seq", "user_id"))
    assert table == {"seq": [1, 2], "user_id": ["a", "b"]}
    assert list(rows(table, ("user_id", "seq"))) == [("a", 1), ("b", 2)]
    assert columns([], ("seq", "user_id")) == {"seq": [], "user_id": []}
    with pytest.raises(ValueError):
        columns([(1, "a", "extra")], ("seq", "user_id"))
    with pytest.raises(ValueError):
        list(rows({"seq": [1, 2], "user_id": ["a"]}, ("seq", "user_id")))
