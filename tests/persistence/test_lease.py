"""One owner per shard of the journal: leases, their epochs, and commits fenced by them."""

from __future__ import annotations

import socket

import pytest

from engine.errors import JournalFailed
from persistence import open_store
from persistence.database import connect, ensure_schema
from persistence.lease import (
    ENGINE,
    Fenced,
    LeaseHeld,
    acquire,
    blocker,
    release,
    renew,
    shard_lease,
)
from tests.persistence.test_journal import charge

pytestmark = pytest.mark.anyio


def test_a_second_live_instance_is_refused_and_named(database_url: str) -> None:
    engine = connect(database_url)
    ensure_schema(engine)
    try:
        first = acquire(engine, ENGINE, mode="exclusive", owner="elsewhere:1")
        with pytest.raises(LeaseHeld, match="elsewhere:1"):
            acquire(engine, ENGINE, mode="exclusive", owner="elsewhere:2")
        assert blocker(engine, mode="exclusive") is not None
        # Nor may a cluster's shard host start beside the embedded instance.
        with pytest.raises(LeaseHeld):
            acquire(engine, shard_lease(0), mode="takeover", owner="host:1")
        release(engine, first)  # a clean stop: the next one need not wait
        again = acquire(engine, ENGINE, mode="exclusive", owner="elsewhere:2")
        assert again.epoch == first.epoch + 1
    finally:
        engine.dispose()


def test_an_owner_on_this_machine_whose_process_is_gone_is_taken_over_at_once(
    database_url: str,
) -> None:
    engine = connect(database_url)
    ensure_schema(engine)
    try:
        dead = f"{socket.gethostname()}:{2**22 + 12345}"  # beyond any pid in use
        acquire(engine, ENGINE, mode="exclusive", owner=dead)
        assert acquire(engine, ENGINE, mode="exclusive").epoch == 2
    finally:
        engine.dispose()


async def test_a_taken_over_lease_fences_every_later_commit_for_good(database_url: str) -> None:
    async with open_store(
        database_url, seed_demo=False, lease=shard_lease(3), lease_mode="takeover"
    ) as store:
        journal = store.journal
        await journal.append([charge("wallet:0", 1)]).wait()
        assert journal.healthy
        # A replacement takes the shard over while this one is (say) paused.
        successor = acquire(store.engine, shard_lease(3), mode="takeover", owner="successor:9")
        with pytest.raises(JournalFailed):
            await journal.append([charge("wallet:0", 2)]).wait()
        assert journal.fenced and not journal.healthy
        assert "fenced" in (journal.last_error or "")
        assert journal.lease is not None and successor.epoch == journal.lease.epoch + 1
        with pytest.raises(Fenced):  # renewing says so too
            renew(store.engine, journal.lease)
        history = (await journal.load(["wallet:0"]))["wallet:0"]
        assert [r.actor_seq for r in history.records] == [1]  # nothing after the takeover
