"""The group-commit journal on its own: ordering, grouping, snapshots, failures, shutdown."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from sqlalchemy import text

from engine.domain.wallet import Charged
from engine.errors import JournalFailed
from engine.journal import CommitTicket, JournalRecord, Snapshot
from persistence import SqlJournal, open_store

pytestmark = pytest.mark.anyio


def charge(key: str, seq: int, amount: int = 10) -> JournalRecord:
    return JournalRecord(key, seq, Charged(f"user-{seq}", amount, f"k{seq}"))


async def test_tickets_resolve_in_append_order_and_the_records_load_back(
    database_url: str,
) -> None:
    resolved: list[int] = []
    async with open_store(database_url, seed_demo=False) as store:
        tickets: list[CommitTicket] = []
        for n in range(1, 201):
            ticket = store.journal.append([charge(f"wallet:{n % 3}", (n + 2) // 3, n)])
            ticket.on_commit(lambda n=n: resolved.append(n))  # type: ignore[misc]
            tickets.append(ticket)
        assert not any(t.done for t in tickets)  # append queues; it never commits inline
        await tickets[-1].wait()
        assert all(t.done and not t.failed for t in tickets)
        histories = await store.journal.load()
    assert resolved == list(range(1, 201))
    assert sorted(histories) == ["wallet:0", "wallet:1", "wallet:2"]
    for key, history in histories.items():
        assert [r.actor_seq for r in history.records] == list(range(1, len(history.records) + 1))
        assert all(r.actor_key == key for r in history.records)
    amounts = sorted(
        r.event.amount
        for h in histories.values()
        for r in h.records
        if isinstance(r.event, Charged)
    )
    assert amounts == list(range(1, 201))


async def test_appends_of_many_actors_share_one_commit(database_url: str) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        tickets = [store.journal.append([charge(f"wallet:{n}", 1)]) for n in range(50)]
        await tickets[-1].wait()
        assert store.journal.stats.commits == 1
        assert store.journal.stats.events == 50


async def test_a_large_queue_is_committed_in_groups_of_max_batch(database_url: str) -> None:
    async with open_store(database_url, seed_demo=False, max_batch=100) as store:
        tickets = [store.journal.append([charge("wallet:0", n)]) for n in range(1, 351)]
        await tickets[-1].wait()
        assert store.journal.stats.commits == 4
        history = (await store.journal.load(["wallet:0"]))["wallet:0"]
    assert len(history.records) == 350


async def test_recovery_reads_the_latest_snapshot_and_only_the_records_after_it(
    database_url: str,
) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        journal = store.journal
        journal.append([charge("wallet:0", n) for n in range(1, 6)])
        journal.save_snapshot(Snapshot("wallet:0", 3, {"at": 3}))
        journal.save_snapshot(Snapshot("wallet:0", 5, {"at": 5, "nested": [[1, "a"]]}))
        await journal.append([charge("wallet:0", 6), charge("wallet:0", 7)]).wait()
        journal.append([charge("wallet:1", 1)])
    async with open_store(database_url, seed_demo=False) as store:
        histories = await store.journal.load()
        only_one = await store.journal.load(["wallet:1", "nobody"])
        with store.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM snapshot")).scalar_one()
    history = histories["wallet:0"]
    assert history.snapshot == Snapshot("wallet:0", 5, {"at": 5, "nested": [[1, "a"]]})
    assert [r.actor_seq for r in history.records] == [6, 7]
    assert history.last_seq == 7
    assert stored == 1  # an actor keeps its latest snapshot only
    assert list(only_one) == ["wallet:1"]
    assert [r.actor_seq for r in only_one["wallet:1"].records] == [1]


@pytest.mark.parametrize("keys", [["wallet:0"], None], ids=["one-actor", "every-actor"])
async def test_a_load_without_snapshots_returns_every_record_of_each_actor(
    database_url: str, keys: list[str] | None
) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        journal = store.journal
        journal.append([charge("wallet:0", n) for n in range(1, 6)])
        journal.save_snapshot(Snapshot("wallet:0", 4, {"version": 99}))
        await journal.append([charge("wallet:1", 1)]).wait()
        histories = await journal.load(keys, snapshots=False)
    assert histories["wallet:0"].snapshot is None
    assert [r.actor_seq for r in histories["wallet:0"].records] == [1, 2, 3, 4, 5]
    assert list(histories) == (["wallet:0"] if keys else ["wallet:0", "wallet:1"])


async def test_closing_the_store_commits_everything_queued(database_url: str) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        for n in range(1, 1001):
            store.journal.append([charge(f"wallet:{n % 7}", (n + 6) // 7)])
    async with open_store(database_url, seed_demo=False) as store:
        histories = await store.journal.load()
    assert sum(len(h.records) for h in histories.values()) == 1000


async def test_a_failed_commit_acknowledges_nothing_and_poisons_its_actors(
    database_url: str,
) -> None:
    poisoned: list[set[str]] = []
    async with open_store(database_url, seed_demo=False, max_batch=1) as store:
        journal = store.journal
        journal.on_failure(poisoned.append)
        await journal.append([charge("wallet:0", 1, amount=1)]).wait()
        # A second writer took seq 2 of wallet:0 behind our back: our seq 2 cannot commit.
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO journal_event (actor_key, actor_seq, kind, payload, recorded_at)"
                    " VALUES ('wallet:0', 2, 'wallet.charged', :payload, :at)"
                ),
                {
                    "payload": '{"user_id":"intruder","amount":5,"key":null}',
                    "at": datetime.now(UTC),
                },
            )
        doomed = journal.append([charge("wallet:0", 2, amount=2)])
        later_same_actor = journal.append([charge("wallet:0", 3, amount=3)])
        journal.save_snapshot(Snapshot("wallet:0", 3, {"lost": True}))
        other_actor = journal.append([charge("wallet:1", 1, amount=4)])
        with pytest.raises(JournalFailed):
            await doomed.wait()
        with pytest.raises(JournalFailed):
            await later_same_actor.wait()
        with pytest.raises(JournalFailed):  # queued behind the failure: failed, not kept waiting
            await other_actor.wait()
        assert poisoned == [{"wallet:0", "wallet:1"}]

        refused = journal.append([charge("wallet:0", 3, amount=6)])
        assert refused.failed  # at once, while the actor has not rebuilt
        journal.save_snapshot(Snapshot("wallet:0", 3, {"lost": True}))

        history = (await journal.load(["wallet:0"]))["wallet:0"]
        assert [(r.actor_seq, r.event) for r in history.records] == [
            (1, Charged("user-1", 1, "k1")),
            (2, Charged("intruder", 5, None)),
        ]
        journal.reopen("wallet:0")
        journal.reopen("wallet:1")
        await journal.append([charge("wallet:0", 3, amount=7)]).wait()
        await journal.append([charge("wallet:1", 1, amount=4)]).wait()
    async with open_store(database_url, seed_demo=False) as store:
        histories = await store.journal.load()
    assert histories["wallet:0"].snapshot is None
    assert [r.event.amount for r in histories["wallet:0"].records] == [1, 5, 7]  # type: ignore[attr-defined]
    assert [r.event.amount for r in histories["wallet:1"].records] == [4]  # type: ignore[attr-defined]
    assert journal.stats.failures == 1


async def test_an_event_that_cannot_be_encoded_fails_its_append_and_poisons_its_actor(
    database_url: str,
) -> None:
    poisoned: list[set[str]] = []
    async with open_store(database_url, seed_demo=False) as store:
        journal = store.journal
        journal.on_failure(poisoned.append)
        unencodable = journal.append([charge("wallet:0", 1, amount=2**64)])  # past JSON's ints
        assert unencodable.failed
        with pytest.raises(JournalFailed, match="could not be stored"):
            await unencodable.wait()
        assert poisoned == [{"wallet:0"}]
        await journal.append([charge("wallet:1", 1)]).wait()  # other actors carry on
        assert "wallet:0" not in await journal.load(["wallet:0"])


async def test_every_append_of_a_failed_group_fails_even_of_other_actors(
    database_url: str,
) -> None:
    poisoned: list[set[str]] = []
    async with open_store(database_url, seed_demo=False) as store:
        journal = store.journal
        journal.on_failure(poisoned.append)
        await journal.append([charge("wallet:0", 1)]).wait()
        duplicate = journal.append([charge("wallet:0", 1)])
        bystander = journal.append([charge("wallet:1", 1)])
        with pytest.raises(JournalFailed):
            await duplicate.wait()
        with pytest.raises(JournalFailed):
            await bystander.wait()
        assert poisoned == [{"wallet:0", "wallet:1"}]
        assert "wallet:1" not in await journal.load(["wallet:1"])


async def test_appends_after_close_fail_instead_of_being_lost(database_url: str) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        journal = store.journal
    late = journal.append([charge("wallet:0", 1)])
    assert late.failed
    with anyio.fail_after(1), pytest.raises(JournalFailed):
        await late.wait()


@pytest.mark.parametrize(
    "covered",
    [0, 10, 95, 100],
    ids=["no-snapshot-one-scan", "short-snapshot-one-scan", "long-snapshot-range-reads", "all"],
)
async def test_full_recovery_returns_exactly_the_records_after_each_snapshot(
    database_url: str, covered: int
) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        journal = store.journal
        journal.append([charge("wallet:0", n, amount=n) for n in range(1, 101)])
        if covered:
            journal.save_snapshot(Snapshot("wallet:0", covered, {"upto": covered}))
        await journal.append([charge("wallet:1", 1), charge("wallet:1", 2)]).wait()
        histories = await journal.load()
    history = histories["wallet:0"]
    assert history.snapshot == (
        Snapshot("wallet:0", covered, {"upto": covered}) if covered else None
    )
    assert [r.event.amount for r in history.records] == list(range(covered + 1, 101))  # type: ignore[attr-defined]
    assert [r.actor_seq for r in histories["wallet:1"].records] == [1, 2]


async def test_a_cancelled_writer_fails_what_it_had_not_committed(database_url: str) -> None:
    async with open_store(database_url, seed_demo=False) as store:
        journal = SqlJournal(store.engine, linger=10.0)  # it would wait 10 s before committing
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            pending = journal.append([charge("wallet:0", 1)])
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        assert pending.failed
        assert journal.append([charge("wallet:0", 2)]).failed
        assert await journal.load() == {}
