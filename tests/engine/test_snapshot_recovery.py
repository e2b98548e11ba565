"""A snapshot an actor cannot read is refused loudly, and the actor replays all its events."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from engine.actors.wallet import WalletActor
from engine.clock import ManualClock
from engine.commands import Charge
from engine.config import EngineConfig
from engine.errors import JournalFailed
from engine.journal import MemoryJournal, Snapshot
from engine.snapshots import SnapshotRefused
from engine.system import EngineSystem
from tests.commands import charge, hold, pay
from tests.engine.conftest import CONCERT, DATE, admitted, catalog
from tests.support import settle

pytestmark = pytest.mark.anyio

CONFIG = EngineConfig(snapshot_every=2, wallet_shards=1, checkout_shards=1)

UNREADABLE: dict[str, dict[str, Any]] = {
    "newer version": {"version": 99},
    "version not a number": {"version": "1"},
    "current version, malformed": {"version": 1, "balances": {}},
}


def spoil(journal: MemoryJournal, state: dict[str, Any]) -> None:
    """Overwrite every stored snapshot's state with `state` (a foreign or corrupt one)."""
    for key, snapshot in journal.snapshots.items():
        journal.snapshots[key] = Snapshot(key, snapshot.actor_seq, state)


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


async def charged_wallet(journal: MemoryJournal) -> WalletActor:
    """A wallet with three charges, snapshotted after the second; left stopped."""
    actor = WalletActor(0, CONFIG, journal=journal, clock=ManualClock())
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        for n in (1, 2, 3):
            await actor.ask(Charge("ann", n, f"k{n}"))
        actor.close()
    assert journal.snapshots[actor.key].actor_seq == 2
    return actor


@pytest.mark.parametrize("state", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_an_unreadable_snapshot_is_refused_loudly_and_every_event_is_replayed(
    state: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    journal = MemoryJournal()
    original = await charged_wallet(journal)
    spoil(journal, state)
    copy = WalletActor(0, CONFIG, journal=journal, clock=ManualClock())
    await copy.recover((await journal.load([copy.key]))[copy.key])
    assert copy.state.to_snapshot() == original.state.to_snapshot()
    assert copy.seq == 3
    [message] = refusals(caplog)
    assert f"snapshot of wallet:0 at seq 2 (version {state['version']!r})" in message
    assert "replaying every event of wallet:0 from seq 0" in message


async def test_restore_refuses_an_unreadable_snapshot_and_changes_nothing() -> None:
    journal = MemoryJournal()
    await charged_wallet(journal)
    spoil(journal, {"version": 99})
    copy = WalletActor(0, CONFIG, journal=journal, clock=ManualClock())
    with pytest.raises(SnapshotRefused, match="wallet snapshot of version 99"):
        copy.restore((await journal.load([copy.key]))[copy.key])
    assert copy.seq == 0 and copy.state.balances == {}


async def test_a_load_without_snapshots_holds_every_event_of_the_actor() -> None:
    journal = MemoryJournal()
    await charged_wallet(journal)
    history = (await journal.load(["wallet:0"], snapshots=False))["wallet:0"]
    assert history.snapshot is None
    assert [r.actor_seq for r in history.records] == [1, 2, 3]


async def test_an_actor_rebuilding_after_a_failed_commit_replays_past_a_refused_snapshot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = MemoryJournal()
    actor = WalletActor(0, CONFIG, journal=journal, clock=ManualClock())
    journal.on_failure(lambda keys: actor.poison() if actor.key in keys else None)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        for n in (1, 2, 3):
            await actor.ask(Charge("ann", n, f"k{n}"))
        spoil(journal, {"version": 99})
        journal.fail_next()
        with pytest.raises(JournalFailed):
            await actor.ask(Charge("ann", 100, "lost"))
        await settle()
        assert await actor.ask(Charge("ann", 10, "k4")) == 1 + 2 + 3 + 10
        assert actor.stats().rebuilds == 1
        actor.close()
    assert any("wallet:0" in m and "version 99" in m for m in refusals(caplog))


async def test_the_engine_recovers_every_actor_past_snapshots_it_cannot_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal, clock = MemoryJournal(), ManualClock()
    config = EngineConfig(snapshot_every=1, admit_interval_seconds=10, wallet_shards=2)

    def engine() -> EngineSystem:
        return EngineSystem(journal, config=config, clock=clock, catalog=catalog())

    async with engine().running() as system:
        await admitted(system, clock, "ann", "bob")
        await charge(system, "ann", 500, "topup")
        held = await hold(system, "ann", CONCERT, DATE, 3)
        await hold(system, "bob", CONCERT, DATE, 4)
        await pay(system, "ann", [held.reservation_id], "pay")
        before = {a.key: a.state.to_snapshot() for a in system.all_actors()}
    spoiled = set(journal.snapshots)
    assert {"waiting-room", f"date:{CONCERT}:{DATE}"} <= spoiled
    spoil(journal, {"version": 99})
    async with engine().running() as system:
        assert {a.key: a.state.to_snapshot() for a in system.all_actors()} == before
    assert {key for key in spoiled for m in refusals(caplog) if key in m} == spoiled
