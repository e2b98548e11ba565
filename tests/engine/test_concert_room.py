"""A concert's own room as plain Python: the pre-queue and its shuffle, leaving, abandonment,
the proof of work and waits that never rise."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter

import pytest

from engine.domain.concert_room import (
    CHALLENGE_SECONDS,
    ConcertRoom,
    RoomScheduled,
    leading_zero_bits,
    permutation,
)
from engine.domain.waiting_room import Admitted, RoomOpened
from engine.errors import CHALLENGE_FAILED, ROOM_NOT_OPEN, Refused
from engine.events import Event
from engine.views import OnSale

START = 10_000.0
ABANDON = 300.0


def on_sale(batch_size: int = 2, interval_seconds: float = 10.0, proof_of_work: int = 0) -> OnSale:
    return OnSale(START, 900.0, batch_size, interval_seconds, None, 600.0, proof_of_work)


def room(
    batch_size: int = 2, interval_seconds: float = 10.0, proof_of_work: int = 0
) -> ConcertRoom:
    r = ConcertRoom("gig", on_sale(batch_size, interval_seconds, proof_of_work), ABANDON)
    run(r, [RoomOpened("cd" * 32), RoomScheduled.of(r.on_sale)])
    return r


def run(r: ConcertRoom, events: list[Event]) -> list[Event]:
    for event in events:
        r.apply(event)
    return events


def join(r: ConcertRoom, *users: str, at: float) -> list[int]:
    for user in users:
        run(r, r.join(user, at))
    return [r.seq_of[user] for user in users]


def start(r: ConcertRoom, seed: str = "5eed" * 8, at: float = START) -> None:
    run(r, r.start(at, seed))


def ranks(r: ConcertRoom, seqs: list[int]) -> list[int | None]:
    return [r.rank_of(seq) for seq in seqs]


def solve(challenge: str, difficulty: int) -> str:
    for n in itertools.count():
        nonce = str(n)
        digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
        if leading_zero_bits(digest) >= difficulty:
            return nonce
    raise AssertionError  # unreachable: count() never ends


# -- the pre-queue and the start ---------------------------------------------------------------


def test_a_join_before_the_pre_queue_opens_is_refused_with_when_it_opens() -> None:
    r = room()
    with pytest.raises(Refused) as refused:
        r.join("ann", START - 901)
    assert refused.value.code == ROOM_NOT_OPEN
    assert dict(refused.value.details) == {"opensAt": START - 900}


def test_a_join_in_the_pre_queue_has_no_rank_until_the_start() -> None:
    r = room()
    (ann,) = join(r, "ann", at=START - 900)
    view = r.view(ann, START - 10)
    assert (view.status, view.rank, view.eta_seconds) == ("PRE_QUEUE", None, None)
    assert view.starts_at == START and view.concert_id == "gig"
    assert r.state_at(START - 901) == "not_open" and r.state_at(START - 10) == "pre_queue"


def test_the_start_gives_the_pre_queue_a_shuffled_order_and_later_joins_come_after() -> None:
    r = room()
    early = join(r, *(f"u{n}" for n in range(50)), at=START - 100)
    start(r)
    assert r.state_at(START) == "open"
    assert sorted(rank or 0 for rank in ranks(r, early)) == list(range(1, 51))
    assert ranks(r, early) != list(range(1, 51))
    late = join(r, "late1", "late2", at=START + 1)
    assert ranks(r, late) == [51, 52]
    assert {r.status_of(seq) for seq in early + late} == {"WAITING"}


def test_the_start_comes_once_and_not_before_its_time() -> None:
    r = room()
    assert r.start(START - 0.1, "00" * 32) == []
    start(r)
    assert r.start(START + 5, "00" * 32) == []


def test_replaying_the_start_makes_the_same_order() -> None:
    first, second = room(), room()
    for r in (first, second):
        join(r, *(f"u{n}" for n in range(30)), at=START - 5)
    events = first.start(START, "ab" * 32)
    run(first, events)
    run(second, events)
    assert [first.rank_of(s) for s in range(1, 31)] == [second.rank_of(s) for s in range(1, 31)]


def test_the_shuffle_is_uniform_over_every_order() -> None:
    """Every order of 4 buyers is about as likely as every other (chi-square over 24 orders,
    seeds fixed so the test is the same on every run)."""
    runs = 4_800
    counts: Counter[tuple[int, ...]] = Counter()
    for n in range(runs):
        seed = hashlib.sha256(n.to_bytes(4, "big")).digest()
        counts[tuple(permutation([1, 2, 3, 4], seed))] += 1
    assert len(counts) == 24
    expected = runs / 24
    chi_square = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi_square < 49.7  # 23 degrees of freedom, p = 0.001


def test_every_buyer_is_equally_likely_first_in_a_room_of_many_shuffles() -> None:
    firsts: Counter[int] = Counter()
    for n in range(2_000):
        r = room()
        join(r, "a", "b", "c", "d", "e", at=START - 1)
        start(r, seed=hashlib.sha256(b"run%d" % n).hexdigest())
        firsts[r.seq_at[0]] += 1
    assert set(firsts) == {1, 2, 3, 4, 5}
    assert all(330 < count < 470 for count in firsts.values())  # 400 each, 4.5 sigma apart


def test_the_first_batch_is_admitted_one_interval_after_the_start_in_shuffled_order() -> None:
    r = room(batch_size=3)
    join(r, *(f"u{n}" for n in range(10)), at=START - 1)
    start(r)
    assert r.tick(START) == []
    order = [r.seq_at[place - 1] for place in r.waiting[:3]]
    (admitted,) = run(r, r.tick(START + 10))
    assert isinstance(admitted, Admitted) and list(admitted.seqs) == order
    assert {r.status_of(s) for s in order} == {"PROCESSING"}
    assert r.rank_of(r.seq_at[3]) == 1


# -- leaving and abandonment ------------------------------------------------------------------


def test_leaving_moves_everyone_behind_up_and_the_token_is_left() -> None:
    r = room()
    start(r)
    a, b, c = join(r, "a", "b", "c", at=START + 1)
    run(r, r.leave(a, START + 2))
    assert ranks(r, [b, c]) == [1, 2]
    assert r.view(a, START + 2).status == "LEFT"
    assert r.leave(a, START + 3) == []
    assert r.left_total == 1


def test_leaving_the_pre_queue_takes_no_place_at_the_start() -> None:
    r = room()
    a, b = join(r, "a", "b", at=START - 10)
    run(r, r.leave(a, START - 5))
    start(r)
    assert r.rank_of(b) == 1 and r.status_of(a) == "LEFT"


def test_a_token_whose_page_is_not_seen_is_abandoned_and_those_behind_move_up() -> None:
    r = room()
    start(r)
    run(r, r.reschedule(paused=True))  # nobody admitted meanwhile
    gone, kept = join(r, "gone", "kept", at=START + 1)
    for t in range(30, 400, 30):
        r.seen((kept,), START + t)
    events = r.tick(START + ABANDON + 1.5)
    run(r, events)
    view = r.view(gone, START + ABANDON + 2)
    assert (view.status, view.reason) == ("EXPIRED", "abandoned")
    assert r.rank_of(kept) == 1 and r.abandoned_total == 1


def test_a_page_seen_in_time_never_loses_its_place() -> None:
    r = room()
    (ann,) = join(r, "ann", at=START - 100)
    start(r)
    run(r, r.reschedule(paused=True))
    for t in range(0, 3_000, 200):
        r.seen((ann,), START + t)
        run(r, r.tick(START + t + 1))
    assert r.status_of(ann) == "WAITING"


def test_after_a_restart_every_token_counts_as_seen_at_the_restart() -> None:
    r = room()
    start(r)
    (ann,) = join(r, "ann", at=START + 1)
    r.revive(START + 1_000)  # the sightings since the join were lost
    assert r.abandoned_at(START + 1_000 + ABANDON - 1) == ()
    assert r.abandoned_at(START + 1_000 + ABANDON) == (ann,)


# -- proof of work ----------------------------------------------------------------------------


def test_a_solved_challenge_is_accepted_once() -> None:
    r = room(proof_of_work=8)
    start(r)
    challenge = r.challenge(START, b"\x01" * 12)
    assert challenge.difficulty == 8 and challenge.expires_at == START + CHALLENGE_SECONDS
    nonce = solve(challenge.challenge, 8)
    run(r, r.check_work(challenge.challenge, nonce, START + 1))
    with pytest.raises(Refused, match="used already") as reused:
        r.check_work(challenge.challenge, nonce, START + 2)
    assert reused.value.code == CHALLENGE_FAILED


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "asks for a solved"),
        ("wrong nonce", "does not solve"),
        ("forged", "not a challenge of this room"),
        ("expired", "expired"),
        ("long nonce", "at most 64"),
    ],
)
def test_a_challenge_missing_wrong_forged_or_expired_is_refused(case: str, message: str) -> None:
    r = room(proof_of_work=12)
    start(r)
    issued = r.challenge(START, b"\x02" * 12).challenge
    nonce, challenge, at = solve(issued, 12), issued, START + 1
    if case == "missing":
        challenge = ""
    elif case == "wrong nonce":
        nonce = next(
            str(n)
            for n in itertools.count()
            if leading_zero_bits(hashlib.sha256(f"{issued}:{n}".encode()).digest()) < 12
        )
    elif case == "forged":
        challenge = issued.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAA"
    elif case == "expired":
        at = START + CHALLENGE_SECONDS + 1
    else:
        nonce = "0" * 65
    with pytest.raises(Refused, match=message) as refused:
        r.check_work(challenge, nonce, at)
    assert refused.value.code == CHALLENGE_FAILED


def test_used_challenges_are_forgotten_once_expired() -> None:
    r = room(proof_of_work=1)
    start(r)
    first = r.challenge(START, b"\x03" * 12)
    run(r, r.check_work(first.challenge, solve(first.challenge, 1), START))
    later = r.challenge(START + 2 * CHALLENGE_SECONDS, b"\x04" * 12)
    run(r, r.check_work(later.challenge, solve(later.challenge, 1), START + 2 * CHALLENGE_SECONDS))
    assert list(r.used_challenges) == [later.challenge]


# -- waits that never rise ------------------------------------------------------------------


def test_the_eta_told_never_rises_while_the_settings_stay() -> None:
    r = room(batch_size=1, interval_seconds=10)
    start(r)
    seqs = join(r, *(f"u{n}" for n in range(20)), at=START + 1)
    last = seqs[-1]
    told = [r.view(last, START + 2).eta_seconds]
    # Admissions come slower than the settings say: the measured rate falls.
    for k in range(1, 6):
        now = START + 10 + 30 * k
        run(r, r.tick(now))
        told.append(r.view(last, now).eta_seconds)
    assert all(a is not None and b is not None and b <= a for a, b in itertools.pairwise(told))


def test_a_reconfiguration_lets_the_eta_rise() -> None:
    r = room(batch_size=10, interval_seconds=10)
    start(r)
    seqs = join(r, *(f"u{n}" for n in range(50)), at=START + 1)
    before = r.view(seqs[-1], START + 2).eta_seconds
    run(r, r.reschedule(batch_size=1))
    after = r.view(seqs[-1], START + 3).eta_seconds
    assert before is not None and after is not None and after > before


def test_the_start_cannot_move_once_started() -> None:
    r = room()
    start(r)
    with pytest.raises(Refused, match="has started") as refused:
        r.reschedule(starts_at=START + 100)
    assert refused.value.code == "ON_SALE_STARTED"
    run(r, r.reschedule(batch_size=5, paused=True))
    assert r.settings.batch_size == 5 and r.state_at(START + 1) == "paused"


# -- snapshots --------------------------------------------------------------------------------


def test_a_snapshot_restores_the_order_the_places_and_the_used_challenges() -> None:
    r = room(proof_of_work=1)
    early = join(r, *(f"u{n}" for n in range(20)), at=START - 10)
    start(r)
    late = join(r, "late", at=START + 1)
    run(r, r.leave(early[3], START + 2))
    run(r, r.tick(START + 10))
    c = r.challenge(START + 11, b"\x05" * 12)
    run(r, r.check_work(c.challenge, solve(c.challenge, 1), START + 12))
    copy = ConcertRoom("other", on_sale(), ABANDON)
    copy.load_snapshot(r.to_snapshot())
    everyone = early + late
    assert [copy.rank_of(s) for s in everyone] == [r.rank_of(s) for s in everyone]
    assert [copy.status_of(s) for s in everyone] == [r.status_of(s) for s in everyone]
    assert copy.used_challenges == r.used_challenges
    assert copy.to_snapshot() == r.to_snapshot()
