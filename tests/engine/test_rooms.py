"""Concert rooms in the engine (manual clock): routing by concert, the start on the room's own
timer, admission at each room's own rate, leaving, abandonment, payment and recovery."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.clock import ManualClock
from engine.commands import Challenge, Join, Leave, Reschedule, Seen
from engine.config import EngineConfig
from engine.domain.concert_room import leading_zero_bits
from engine.errors import CHALLENGE_FAILED, ROOM_NOT_OPEN, Refused
from engine.journal import MemoryJournal
from engine.system import EngineSystem
from engine.views import OnSale, TokenView
from tests.commands import charge, hold, join, pay
from tests.engine.conftest import catalog

pytestmark = pytest.mark.anyio

GIG, OTHER = "gig", "fest"
DAY = "2027-03-01"


def on_sale(clock: ManualClock, **changes: float) -> OnSale:
    fields: dict[str, float] = {"starts_at": clock.now() + 100, "batch_size": 2}
    fields.update(changes)
    return OnSale(
        starts_at=fields["starts_at"],
        pre_queue_seconds=50,
        batch_size=int(fields["batch_size"]),
        interval_seconds=fields.get("interval_seconds", 10),
        max_active=None,
        active_ttl_seconds=600,
        proof_of_work=int(fields.get("proof_of_work", 0)),
    )


def concerts(clock: ManualClock, **changes: float) -> list[ConcertInfo]:
    gig = ConcertInfo(GIG, "Gig", "Club", (ConcertDateInfo(GIG, DAY, 50, 10),), on_sale(clock))
    fest = ConcertInfo(
        OTHER,
        "Fest",
        "Field",
        (ConcertDateInfo(OTHER, DAY, 50, 10),),
        on_sale(clock, batch_size=5, interval_seconds=20, **changes),
    )
    return [*catalog(), gig, fest]


def engine(journal: MemoryJournal, clock: ManualClock, config: EngineConfig) -> EngineSystem:
    return EngineSystem(journal, config=config, clock=clock, catalog=concerts(clock))


async def join_room(system: EngineSystem, user: str, concert: str = GIG) -> TokenView:
    return await system.ask(Join(user, concert))


async def test_a_concert_with_an_on_sale_issues_tokens_of_its_own_room(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        with pytest.raises(Refused) as early:
            await join_room(system, "ann")
        assert early.value.code == ROOM_NOT_OPEN
        await clock.advance(60)
        view = await join_room(system, "ann")
        assert (view.status, view.concert_id, view.rank) == ("PRE_QUEUE", GIG, None)
        assert view.token.startswith("gig~")
        assert system.token(view.token) == dataclasses.replace(view, new=False)
        site = await join(system, "ann")  # the site-wide room is another room
        assert site.concert_id is None and site.status == "WAITING"
        assert (await system.ask(Join("bob", "aurora"))).concert_id is None


async def test_the_room_starts_on_its_own_timer_and_admits_in_shuffled_order(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(60)
        tokens = [(await join_room(system, f"u{n}")).token for n in range(10)]
        await clock.advance(40)  # the start
        views = [system.token(t) for t in tokens]
        ranks = [v.rank for v in views if v is not None]
        assert sorted(rank or 0 for rank in ranks) == list(range(1, 11))
        late = await join_room(system, "late")
        assert late.rank == 11
        await clock.advance(10)  # the first batch, one interval after the start
        admitted = [t for t in tokens if (v := system.token(t)) and v.status == "PROCESSING"]
        assert len(admitted) == 2
        first_two = [t for t, rank in zip(tokens, ranks, strict=True) if rank in (1, 2)]
        assert sorted(admitted) == sorted(first_two)


async def test_two_rooms_admit_at_their_own_rates(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(100)
        for n in range(30):
            await join_room(system, f"g{n}", GIG)
            await join_room(system, f"f{n}", OTHER)
        for _ in range(4):
            await clock.advance(10)
        figures = {f.concert_id: f for f in system.rooms()}
        # gig: 2 every 10 s -> 4 batches in 40 s; fest: 5 every 20 s -> 2 batches.
        assert figures[GIG].admitted == 8 and figures[OTHER].admitted == 10
        assert figures[GIG].waiting == 22 and figures[OTHER].waiting == 20


async def test_leaving_moves_those_behind_up(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(100)
        a, b = await join_room(system, "a"), await join_room(system, "b")
        left = await system.ask(Leave(a.seq, GIG))
        assert left.status == "LEFT"
        position = system.position(b.seq, GIG)
        assert position is not None and position.rank == 1


async def test_a_page_not_seen_is_abandoned_and_one_seen_keeps_its_place(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(100)
        await system.ask(Reschedule.of(GIG, paused=True))
        gone, kept = await join_room(system, "gone"), await join_room(system, "kept")
        for _ in range(12):
            await clock.advance(30)
            await system.ask(Seen((kept.seq,), GIG))
        gone_now, kept_now = system.token(gone.token), system.token(kept.token)
        assert gone_now is not None and (gone_now.status, gone_now.reason) == (
            "EXPIRED",
            "abandoned",
        )
        assert kept_now is not None and (kept_now.status, kept_now.rank) == ("WAITING", 1)


async def test_a_proof_of_work_join_needs_a_fresh_solved_challenge(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(100)
        await system.ask(Reschedule.of(GIG, proof_of_work=6))
        issued = await system.ask(Challenge(GIG))
        nonce = next(
            str(n)
            for n in range(1_000_000)
            if leading_zero_bits(_sha(f"{issued.challenge}:{n}")) >= 6
        )
        view = await system.ask(Join("ann", GIG, issued.challenge, nonce))
        assert view.new
        with pytest.raises(Refused) as reused:
            await system.ask(Join("bob", GIG, issued.challenge, nonce))
        assert reused.value.code == CHALLENGE_FAILED


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def test_paying_completes_the_token_of_the_concerts_room(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(100)
        token = (await join_room(system, "ann")).token
        await clock.advance(10)
        await charge(system, "ann", 100)
        held = await hold(system, "ann", GIG, DAY, 3)
        await pay(system, "ann", [held.reservation_id])
        view = system.token(token)
        assert view is not None and view.status == "COMPLETED"
        assert {f.concert_id: f.conversion for f in system.rooms()}[GIG] == 1.0


async def test_a_restart_keeps_the_pre_queue_the_shuffled_order_and_the_positions(
    journal: MemoryJournal, clock: ManualClock, config: EngineConfig
) -> None:
    system = engine(journal, clock, config)
    async with system.running():
        await clock.advance(60)
        pre = [(await join_room(system, f"u{n}")).token for n in range(6)]
    revived = engine(journal, clock, config)
    async with revived.running():
        statuses = [v.status for t in pre if (v := revived.token(t))]
        assert statuses == ["PRE_QUEUE"] * 6
        await clock.advance(40)
        ranks = [v.rank for t in pre if (v := revived.token(t))]
    again = engine(journal, clock, config)
    async with again.running():
        again_ranks = [v.rank for t in pre if (v := again.token(t))]
        assert again_ranks == ranks
        assert sorted(r or 0 for r in ranks) == [1, 2, 3, 4, 5, 6]
