"""A concert's own waiting room: a scheduled on-sale with a shuffled pre-queue, leaving,
abandonment, a proof of work and waits that never rise.

Pure Python, event-sourced like the site-wide room it extends (`WaitingRoom`):

- before `opens_at` (`starts_at - pre_queue_seconds`) a join is refused (ROOM_NOT_OPEN);
  until `starts_at` a join is PRE_QUEUE, without a rank;
- at `starts_at` (`Shuffled`) every pre-queued token gets a uniformly random place ahead of
  anyone who joins later: the places are the order of a keyed pseudo-random function
  (SHAKE-256 of the seed) over the pre-queued tokens, the seed drawn by the actor and written
  in the event, so a replay makes the same order. Later joins are first come, first served;
- the queue is a sorted list of *places* (`place_of` per token, `seq_at` per place, both
  arrays: 8 bytes a token), so rank stays O(log n);
- a token whose page is neither polled nor connected for `abandon_seconds` is abandoned
  (EXPIRED, reason "abandoned"). When a page was last seen is *not* journaled: pages report
  by the thousand each second, and a journal write each would cost more than the on-sale.
  What is durable is the decision (`Abandoned`); a restart forgets the sightings and counts
  every token as seen at the restart, so it can only delay an abandonment, never cause one;
- a proof of work: a challenge is signed under the room's secret (nothing is stored to issue
  one) and recorded as used by the join that carries it (`ChallengeUsed`, journaled: a reuse
  is refused after a restart too);
- the ETA told to a token never rises: each answer is at most the previous one counted down,
  until the room is paused or reconfigured (not journaled either: after a restart the first
  answer is the measured one).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
from array import array
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from sortedcontainers import SortedList

from engine.domain.waiting_room import (
    COMPLETED,
    EXPIRED,
    LEFT,
    NAN,
    PRE_QUEUE,
    PROCESSING,
    WAITING,
    ActiveExpired,
    Admitted,
    Joined,
    Left,
    WaitingRoom,
    percentile,
)
from engine.errors import (
    CHALLENGE_FAILED,
    ON_SALE_STARTED,
    ROOM_NOT_OPEN,
    VALIDATION_ERROR,
    Refused,
)
from engine.events import Event, register
from engine.snapshots import SnapshotFormat
from engine.views import (
    ChallengeView,
    OnSale,
    RoomFigures,
    RoomState,
    Scalar,
    TokenStatus,
    TokenView,
)

ABANDONED: Final = "abandoned"
CHALLENGE_SECONDS = 120.0  # how long a proof-of-work challenge may be used
MAX_NONCE = 64  # characters
MAX_DIFFICULTY = 32  # leading zero bits: about 4 * 10^9 hashes, past any fair buyer's patience
SWEEPS_PER_ABANDON = 10  # looks for abandoned tokens per `abandon_seconds`


@register
@dataclass(frozen=True, slots=True)
class RoomScheduled(Event):
    """The room's on-sale, as created or changed (`OnSale`'s fields)."""

    kind: ClassVar[str] = "room.scheduled"
    starts_at: float
    pre_queue_seconds: float
    batch_size: int
    interval_seconds: float
    max_active: int | None
    active_ttl_seconds: float
    proof_of_work: int
    paused: bool

    @classmethod
    def of(cls, on_sale: OnSale) -> RoomScheduled:
        return cls(**dataclasses.asdict(on_sale))

    def on_sale(self) -> OnSale:
        return OnSale(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


@register
@dataclass(frozen=True, slots=True)
class Shuffled(Event):
    """The on-sale started: the pre-queue is put in the order `permutation(seed)` makes."""

    kind: ClassVar[str] = "room.shuffled"
    seed: str  # hex
    at: float


@register
@dataclass(frozen=True, slots=True)
class Abandoned(Event):
    kind: ClassVar[str] = "room.abandoned"
    seqs: tuple[int, ...]
    at: float


@register
@dataclass(frozen=True, slots=True)
class ChallengeUsed(Event):
    kind: ClassVar[str] = "room.challenge_used"
    challenge: str
    expires_at: float


def permutation(items: list[int], seed: bytes) -> list[int]:
    """`items` (distinct, non-negative) in the order of their 64-bit keys from
    SHAKE-256(seed), the i-th key for the i-th item: a uniformly random order to anyone who
    does not know the seed (ties, at 1 in 10^7 for a million items, go by the items)."""
    if not items:
        return []
    keys = memoryview(hashlib.shake_256(seed).digest(8 * len(items))).cast("Q").tolist()
    # Each key with its item in its low bits (items are distinct non-negative integers),
    # sorted as plain integers: a sort with a key function took twice as long for a million.
    bits = max(items).bit_length()
    mask = (1 << bits) - 1
    decorated = [(key << bits) | item for key, item in zip(keys, items, strict=True)]
    decorated.sort()
    return [value & mask for value in decorated]


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


# Version 1: the site-wide room's fields (its version 2) and "concert_id", "on_sale" (OnSale's
# fields), "pre_queued": seqs in arrival order, "seed" (null until the start), "places": table
# (seq, place) of every token that has had a place, "next_place", "abandoned": seqs,
# "abandoned_total", "challenges": table (challenge, expires_at) of those used, unexpired.
SNAPSHOT = SnapshotFormat("concert room", 1)


class ConcertRoom(WaitingRoom):
    def __init__(self, concert_id: str, on_sale: OnSale, abandon_seconds: float) -> None:
        super().__init__(on_sale.admission())
        self.concert_id = concert_id
        self.prefix = f"{concert_id}~"
        self.on_sale = on_sale
        self.abandon_seconds = abandon_seconds
        self.pre_queued: dict[int, None] = {}  # in arrival order
        self.seed: str | None = None  # the start's, once started
        self.place_of = array("q")  # by seq - 1; 0 while without a place
        self.seq_at = array("q")  # by place - 1
        self.abandoned: set[int] = set()
        self.abandoned_total = 0
        self.used_challenges: dict[str, float] = {}  # -> expires at, in the order used
        # Volatile (see the module's docstring): when each token's page was last seen, and
        # the ETA last told to it (and when), by seq - 1.
        self.last_seen = array("d")
        self.told_eta = array("d")
        self.told_at = array("d")
        self.next_sweep: float | None = None

    @property
    def started(self) -> bool:
        return self.seed is not None

    # -- tokens ------------------------------------------------------------------------------

    def token_for(self, seq: int) -> str:
        mac = hmac.new(self.secret, seq.to_bytes(8, "big"), hashlib.sha256).digest()[:15]
        return f"{self.prefix}{seq}.{base64.urlsafe_b64encode(mac).decode()}"

    def _parsed(self, token: str) -> int | None:
        if not token.startswith(self.prefix) or not token.isascii():
            return None
        head, dot, _ = token[len(self.prefix) :].partition(".")
        if not dot or not head.isdigit() or len(head) > 18:
            return None
        return int(head)

    def seq_for(self, token: str) -> int | None:
        seq = self._parsed(token)
        if seq is None or seq not in self.user_of:
            return None
        known = self._active_views.get(seq)
        genuine = known.token if known is not None else self.token_for(seq)
        return seq if hmac.compare_digest(genuine, token) else None

    def issued_later(self, token: str) -> bool:
        seq = self._parsed(token)
        return (
            seq is not None
            and seq >= self.next_seq
            and hmac.compare_digest(self.token_for(seq), token)
        )

    def status_of(self, seq: int) -> TokenStatus:
        if seq in self.active:
            return PROCESSING
        if seq in self.pre_queued:
            return PRE_QUEUE
        place = self.place_of[seq - 1] if seq <= len(self.place_of) else 0
        if place and place in self.waiting:
            return WAITING
        if seq in self.completed:
            return COMPLETED
        return LEFT if seq in self.left else EXPIRED

    def rank_of(self, seq: int) -> int | None:
        place = self.place_of[seq - 1] if seq <= len(self.place_of) else 0
        if not place:
            return None
        index = self.waiting.bisect_left(place)
        if index < len(self.waiting) and self.waiting[index] == place:
            return index + 1
        return None

    def view(self, seq: int, now: float, *, token: str | None = None) -> TokenView:
        known = self._active_views.get(seq)
        if known is not None:
            return known
        status = self.status_of(seq)
        rank = self.rank_of(seq) if status == WAITING else None
        view = TokenView(
            token=token if token is not None else self.token_for(seq),
            seq=seq,
            user_id=self.user_of[seq],
            status=status,
            rank=rank,
            eta_seconds=self.honest_eta(seq, rank, now) if rank is not None else None,
            active_until=self.active.get(seq),
            concert_id=self.concert_id,
            starts_at=self.on_sale.starts_at,
            reason=ABANDONED if status == EXPIRED and seq in self.abandoned else None,
        )
        if status == PROCESSING:
            self._active_views[seq] = view  # as the site-wide room does: see there
        return view

    def honest_eta(self, seq: int, rank: int, now: float) -> float | None:
        """The ETA told to `seq`: the measured one, but never more than the last one told,
        counted down since (until the room is paused or reconfigured). Remembers it."""
        eta = self.eta(rank, now)
        if eta is None or seq > len(self.told_eta):
            return eta
        told = self.told_eta[seq - 1]
        if told == told:  # not NaN: an ETA was told since the last reconfiguration
            eta = min(eta, round(max(0.0, told - (now - self.told_at[seq - 1])), 1))
        self.told_eta[seq - 1] = eta
        self.told_at[seq - 1] = now
        return eta

    # -- the room as anyone sees it ------------------------------------------------------------

    def state_at(self, now: float) -> RoomState:
        if not self.started:
            return "not_open" if now < self.on_sale.opens_at else "pre_queue"
        return "paused" if self.settings.paused else "open"

    def estimated_wait(self, now: float) -> float | None:
        """For one who joins now: until the start, then the wait behind everyone there."""
        eta = self.eta(len(self.waiting) + len(self.pre_queued) + 1, now)
        if eta is None:
            return None
        if not self.started:
            # Nobody is admitted before the start; the first batch one interval after it.
            ahead = len(self.pre_queued) // max(1, self.settings.batch_size)
            per_batch = self.settings.batch_size / self.admission_rate()
            return round(
                max(0.0, self.on_sale.starts_at - now)
                + self.settings.interval_seconds
                + ahead * per_batch,
                1,
            )
        return eta

    # -- deadlines -----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = []
        base = super().next_deadline()
        if base is not None:
            deadlines.append(base)
        if not self.started:
            deadlines.append(self.on_sale.starts_at)
        if self.next_sweep is not None and (self.pre_queued or self.waiting):
            deadlines.append(self.next_sweep)
        return min(deadlines) if deadlines else None

    def start_due(self, now: float) -> bool:
        return not self.started and now >= self.on_sale.starts_at

    # -- decisions (no mutation) ---------------------------------------------------------------

    def join(self, user_id: str, now: float) -> list[Event]:
        if not self.started and now < self.on_sale.opens_at:
            raise Refused(
                ROOM_NOT_OPEN,
                "the waiting room of this on-sale is not open yet",
                details=(("opensAt", self.on_sale.opens_at),),
            )
        seq = self.seq_of.get(user_id)
        if seq is not None and self.status_of(seq) in (PRE_QUEUE, WAITING, PROCESSING):
            return []
        return [Joined(self.next_seq, user_id, now)]

    def start(self, now: float, seed: str) -> list[Event]:
        """The on-sale starts: shuffle the pre-queue (`seed`: fresh random bytes, in hex)."""
        return [Shuffled(seed, now)] if self.start_due(now) else []

    def tick(self, now: float) -> list[Event]:
        """Expire active windows that ran out, admit the next batch if it is due (one
        interval after the start at the soonest), look for abandoned tokens if it is time."""
        events: list[Event] = []
        due = tuple(seq for until, seq in self.active_by_deadline.irange(maximum=(now, 2**63)))
        if due:
            events.append(ActiveExpired(due))
        admit_at = self.admission_due()
        if admit_at is not None and now >= admit_at and not self.settings.paused:
            count = min(self.capacity(leaving=len(due)), len(self.waiting))
            if count > 0:
                seq_at = self.seq_at
                seqs = tuple(seq_at[place - 1] for place in self.waiting[:count])
                events.append(Admitted(seqs, now, now + self.settings.active_ttl_seconds))
        if self.next_sweep is not None and now >= self.next_sweep:
            stale = self.abandoned_at(now)
            if stale:
                events.append(Abandoned(stale, now))
        return events

    def abandoned_at(self, now: float) -> tuple[int, ...]:
        """The waiting and pre-queued tokens whose pages were not seen for `abandon_seconds`
        (a pass over them all: at most `SWEEPS_PER_ABANDON` times per `abandon_seconds`)."""
        cutoff = now - self.abandon_seconds
        seen = self.last_seen
        seq_at = self.seq_at
        stale = [seq for seq in self.pre_queued if seen[seq - 1] <= cutoff]
        for place in self.waiting:
            seq = seq_at[place - 1]
            if seen[seq - 1] <= cutoff:
                stale.append(seq)
        return tuple(stale)

    def leave(self, seq: int, now: float) -> list[Event]:
        if self.status_of(seq) == PRE_QUEUE:
            return [Left(seq, now)]
        return super().leave(seq, now)

    def tick_sweep(self, now: float) -> None:
        """Schedule the next look for abandoned tokens (called by the actor after a tick)."""
        self.next_sweep = now + self.abandon_seconds / SWEEPS_PER_ABANDON

    def reschedule(self, **changes: Any) -> list[Event]:
        """Events of a live change of the on-sale; invalid or unknown settings are refused."""
        merged = dataclasses.asdict(self.on_sale)
        unknown = set(changes) - set(merged)
        if unknown:
            raise Refused(VALIDATION_ERROR, f"unknown settings: {', '.join(sorted(unknown))}")
        merged.update(changes)
        on_sale = OnSale(**merged)
        if self.started and on_sale.starts_at != self.on_sale.starts_at:
            raise Refused(ON_SALE_STARTED, "the on-sale has started", field="startsAt")
        validate(on_sale)
        return [RoomScheduled.of(on_sale)]

    # -- proof of work -------------------------------------------------------------------------

    def challenge(self, now: float, nonce: bytes) -> ChallengeView:
        """A challenge signed under the room's secret (`nonce`: fresh random bytes)."""
        expires = round(now + CHALLENGE_SECONDS, 3)
        difficulty = self.on_sale.proof_of_work
        body = f"{int(expires * 1000)}.{difficulty}.{nonce.hex()}"
        return ChallengeView(f"{body}.{self._sign(body)}", difficulty, expires)

    def _sign(self, body: str) -> str:
        mac = hmac.new(self.secret, b"challenge:" + body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:15]).decode()

    def check_work(self, challenge: str | None, nonce: str | None, now: float) -> list[Event]:
        """The event that records a solved challenge as used; [] when none is asked for.

        Raises:
            Refused: CHALLENGE_FAILED for a challenge missing, forged, expired, reused, or
                not solved by `nonce`.
        """
        if self.on_sale.proof_of_work <= 0:
            return []
        if not challenge or nonce is None:
            raise Refused(CHALLENGE_FAILED, "this room asks for a solved proof-of-work challenge")
        parts = challenge.split(".")
        if len(parts) != 4 or not challenge.isascii() or not parts[0].isdigit():
            raise Refused(CHALLENGE_FAILED, "not a challenge of this room")
        body, mac = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(self._sign(body), mac) or not parts[1].isdigit():
            raise Refused(CHALLENGE_FAILED, "not a challenge of this room")
        expires = int(parts[0]) / 1000
        if now > expires:
            raise Refused(CHALLENGE_FAILED, "the challenge expired; ask for a new one")
        if challenge in self.used_challenges:
            raise Refused(CHALLENGE_FAILED, "the challenge was used already; ask for a new one")
        if len(nonce) > MAX_NONCE:
            raise Refused(CHALLENGE_FAILED, f"a nonce has at most {MAX_NONCE} characters")
        digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
        if leading_zero_bits(digest) < int(parts[1]):
            raise Refused(CHALLENGE_FAILED, "the nonce does not solve the challenge")
        return [ChallengeUsed(challenge, expires)]

    # -- liveness (volatile) ---------------------------------------------------------------------

    def seen(self, seqs: tuple[int, ...], now: float) -> None:
        """These tokens' pages are open now. Not an event: see the module's docstring."""
        seen = self.last_seen
        size = len(seen)
        for seq in seqs:
            if 0 < seq <= size:
                seen[seq - 1] = now

    def revive(self, now: float) -> None:
        """After a restore: every token counts as seen now, and no ETA was told yet."""
        size = self.next_seq - 1
        self.last_seen = array("d", [now]) * size
        self.told_eta = array("d", [NAN]) * size
        self.told_at = array("d", [0.0]) * size
        self.next_sweep = now + self.abandon_seconds / SWEEPS_PER_ABANDON

    # -- the only mutator --------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        match event:
            case Joined(seq=seq, user_id=user, at=at):
                self.user_of[seq] = user
                self.seq_of[user] = seq
                self.joined_at.append(at)
                self.last_seen.append(at)
                self.told_eta.append(NAN)
                self.told_at.append(0.0)
                self.next_seq = seq + 1
                if self.started:
                    self.place_of.append(0)
                    self._give_places([seq], at)
                else:
                    self.place_of.append(0)
                    self.pre_queued[seq] = None
                if self.next_sweep is None:
                    self.next_sweep = at + self.abandon_seconds / SWEEPS_PER_ABANDON
            case Shuffled(seed=seed, at=at):
                self.seed = seed
                order = permutation(list(self.pre_queued), bytes.fromhex(seed))
                self.pre_queued.clear()
                self._give_places(order, at)
            case Admitted(seqs=seqs, at=at, active_until=until):
                for seq in seqs:
                    self.waiting.remove(self.place_of[seq - 1])
                    self.active[seq] = until
                    self.active_by_deadline.add((until, seq))
                    self._note_wait(self.waits, seq, at)
                self.last_admission_at = at
                self.admitted_total += len(seqs)
                self._recent.append((at, len(seqs)))
            case Left(seq=seq, at=at):
                self._drop(seq)
                self._deactivate(seq)
                self.left.add(seq)
                self.left_total += 1
                self._note_wait(self.dropped_waits, seq, at)
            case Abandoned(seqs=seqs, at=at):
                for seq in seqs:
                    self._drop(seq)
                    self.abandoned.add(seq)
                    self._note_wait(self.dropped_waits, seq, at)
                self.abandoned_total += len(seqs)
            case ChallengeUsed(challenge=challenge, expires_at=expires):
                # Forget the challenges that expired before this one was issued.
                issued = expires - CHALLENGE_SECONDS
                used = self.used_challenges
                while used:
                    first = next(iter(used))
                    if used[first] >= issued:
                        break
                    del used[first]
                used[challenge] = expires
            case RoomScheduled():
                self.on_sale = event.on_sale()
                self.settings = self.on_sale.admission()
                self._forget_told_etas()
            case _:
                super().apply(event)

    def _give_places(self, seqs: list[int], at: float) -> None:
        first = len(self.seq_at) + 1
        if not self.waiting:
            self.waiting_since = max(at, self.on_sale.starts_at)
        place_of = self.place_of
        for place, seq in enumerate(seqs, first):
            place_of[seq - 1] = place
        self.seq_at.extend(array("q", seqs))  # a copy of memory, not a conversion per item
        # Places are handed out in increasing order: appended past the end of the list.
        self.waiting.update(range(first, first + len(seqs)))

    def _drop(self, seq: int) -> None:
        if seq in self.pre_queued:
            del self.pre_queued[seq]
            return
        place = self.place_of[seq - 1] if seq <= len(self.place_of) else 0
        if place and place in self.waiting:
            self.waiting.remove(place)
            if not self.waiting:
                self.waiting_since = None

    def _forget_told_etas(self) -> None:
        self.told_eta = array("d", [NAN]) * len(self.told_eta)

    # -- snapshots and figures ---------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        base = super().to_snapshot()
        base.pop("version")
        places = [(i + 1, p) for i, p in enumerate(self.place_of) if p]
        return SNAPSHOT.write(
            **base,
            concert_id=self.concert_id,
            on_sale=dataclasses.asdict(self.on_sale),
            pre_queued=list(self.pre_queued),
            seed=self.seed,
            places={"seq": [s for s, _ in places], "place": [p for _, p in places]},
            next_place=len(self.seq_at) + 1,
            abandoned=sorted(self.abandoned),
            abandoned_total=self.abandoned_total,
            challenges={
                "challenge": list(self.used_challenges),
                "expires_at": list(self.used_challenges.values()),
            },
        )

    def load_snapshot(self, data: dict[str, Any]) -> None:
        """Take the state of a snapshot (raises `SnapshotRefused` for a version it does not
        read); the volatile parts start afresh (`revive`)."""
        data = SNAPSHOT.read(data)
        waiting = data["waiting"]
        super().load_snapshot({**data, "version": 2, "waiting": []})
        self.concert_id = data["concert_id"]
        self.prefix = f"{self.concert_id}~"
        self.on_sale = OnSale(**data["on_sale"])
        self.settings = self.on_sale.admission()
        self.pre_queued = dict.fromkeys(data["pre_queued"])
        self.seed = data["seed"]
        size = self.next_seq - 1
        self.place_of = array("q", [0]) * size
        self.seq_at = array("q", [0]) * (data["next_place"] - 1)
        for seq, place in zip(data["places"]["seq"], data["places"]["place"], strict=True):
            self.place_of[seq - 1] = place
            self.seq_at[place - 1] = seq
        self.waiting = SortedList(waiting)
        self.abandoned = set(data["abandoned"])
        self.abandoned_total = data["abandoned_total"]
        self.used_challenges = dict(
            zip(data["challenges"]["challenge"], data["challenges"]["expires_at"], strict=True)
        )
        self._active_views.clear()
        self.revive(0.0)  # sized to the tokens; the actor revives it again at its clock

    def figures(self, now: float) -> RoomFigures:
        return room_figures(self, self.concert_id, self.state_at(now), now, self.on_sale)

    def summary(self) -> dict[str, Scalar]:
        return {
            **super().summary(),
            "concertId": self.concert_id,
            "preQueued": len(self.pre_queued),
            "startsAt": self.on_sale.starts_at,
            "started": self.started,
            "abandoned": self.abandoned_total,
            "proofOfWork": self.on_sale.proof_of_work,
        }


def validate(on_sale: OnSale) -> None:
    """Refuse an on-sale that cannot run (VALIDATION_ERROR naming the field)."""
    checks = (
        (on_sale.batch_size >= 1, "batchSize", "must be at least 1"),
        (on_sale.interval_seconds > 0, "intervalSeconds", "must be positive"),
        (on_sale.active_ttl_seconds > 0, "activeTtlSeconds", "must be positive"),
        (on_sale.pre_queue_seconds >= 0, "preQueueSeconds", "must not be negative"),
        (on_sale.max_active is None or on_sale.max_active >= 1, "maxActive", "positive or null"),
        (0 <= on_sale.proof_of_work <= MAX_DIFFICULTY, "proofOfWork", "0 to 32 bits"),
        (math.isfinite(on_sale.starts_at), "startsAt", "must be an instant"),
    )
    for ok, field, message in checks:
        if not ok:
            raise Refused(VALIDATION_ERROR, f"{field} {message}", field=f"onSale.{field}")


def room_figures(
    room: WaitingRoom,
    concert_id: str | None,
    state: RoomState,
    now: float,
    on_sale: OnSale | None = None,
) -> RoomFigures:
    """The operator's figures of a room (site-wide or a concert's)."""
    pre_queued = len(room.pre_queued) if isinstance(room, ConcertRoom) else 0
    abandoned = room.abandoned_total if isinstance(room, ConcertRoom) else 0
    recent = [(at, count) for at, count in room._recent if at >= now - 60]
    per_minute = (
        room.admission_rate() * 60 if len(recent) >= 2 else float(sum(count for _, count in recent))
    )
    return RoomFigures(
        concert_id=concert_id,
        state=state,
        on_sale=on_sale,
        settings=room.settings,
        waiting=len(room.waiting),
        pre_queued=pre_queued,
        active=len(room.active),
        admitted=room.admitted_total,
        admitted_per_minute=round(per_minute, 1),
        waited_p50_seconds=percentile(room.waits, 0.5),
        waited_p90_seconds=percentile(room.waits, 0.9),
        left=room.left_total,
        abandoned=abandoned,
        dropped_waited_p50_seconds=percentile(room.dropped_waits, 0.5),
        completed=room.completed_total,
        conversion=round(room.completed_total / room.admitted_total, 3)
        if room.admitted_total
        else None,
    )
