"""The virtual waiting room: tokens, FIFO order, rank, batch admission and active windows.

Pure Python, event-sourced like the seat map. Built for a million waiting users:

- a token is `<seq>.<mac>`, an HMAC of its sequence number under the room's secret, so it is
  unguessable yet costs no memory: only `seq -> user` is stored;
- rank is the position of `seq` in a sorted list of waiting sequence numbers: O(log n).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import statistics
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from sortedcontainers import SortedList

from engine.errors import (
    QUEUE_WAITING,
    TOKEN_COMPLETED,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_LEFT,
    VALIDATION_ERROR,
    Refused,
)
from engine.events import Event, register
from engine.snapshots import SnapshotFormat, columns, rows
from engine.views import RoomSettings, Scalar, TokenStatus, TokenView

WAITING: Final = "WAITING"
PROCESSING: Final = "PROCESSING"
COMPLETED: Final = "COMPLETED"
EXPIRED: Final = "EXPIRED"
PRE_QUEUE: Final = "PRE_QUEUE"
LEFT: Final = "LEFT"

_REFUSAL_OF_STATUS = {
    WAITING: (QUEUE_WAITING, "you are still waiting in the queue"),
    PRE_QUEUE: (QUEUE_WAITING, "the on-sale has not started; you are in its pre-queue"),
    LEFT: (TOKEN_LEFT, "you left the queue; join it again"),
    COMPLETED: (TOKEN_COMPLETED, "this token has been used for a payment; join the queue again"),
    EXPIRED: (TOKEN_EXPIRED, "the active window of this token ran out; join the queue again"),
}


def refusal_for(status: TokenStatus) -> Refused:
    """Why a token of `status` may not make a new hold, charge or payment."""
    code, message = _REFUSAL_OF_STATUS.get(status, (TOKEN_INVALID, "token not usable"))
    return Refused(code, message)


RATE_WINDOW = 10  # admissions the measured admission rate is averaged over
WAITS_KEPT = 1_000  # recent waits (until admission, until dropping out) the figures describe


@register
@dataclass(frozen=True, slots=True)
class RoomOpened(Event):
    kind: ClassVar[str] = "room.opened"
    secret: str


@register
@dataclass(frozen=True, slots=True)
class Joined(Event):
    kind: ClassVar[str] = "room.joined"
    seq: int
    user_id: str
    at: float


@register
@dataclass(frozen=True, slots=True)
class Admitted(Event):
    kind: ClassVar[str] = "room.admitted"
    seqs: tuple[int, ...]
    at: float
    active_until: float


@register
@dataclass(frozen=True, slots=True)
class ActiveExpired(Event):
    kind: ClassVar[str] = "room.expired"
    seqs: tuple[int, ...]


@register
@dataclass(frozen=True, slots=True)
class TokenCompleted(Event):
    kind: ClassVar[str] = "room.completed"
    seq: int


@register
@dataclass(frozen=True, slots=True)
class Left(Event):
    """The buyer left the queue (or gave up an active window)."""

    kind: ClassVar[str] = "room.left"
    seq: int
    at: float


@register
@dataclass(frozen=True, slots=True)
class RoomConfigured(Event):
    kind: ClassVar[str] = "room.configured"
    batch_size: int
    interval_seconds: float
    max_active: int | None
    active_ttl_seconds: float
    paused: bool


# Version 1: {"version": 1, "secret": hex, "next_seq": int, "settings": RoomSettings' fields,
# "tokens": table of every token issued (seq, user_id) in issue order, "waiting": seqs in
# order, "active": table (seq, until), "completed": seqs, "last_admission_at",
# "waiting_since", "totals": {admitted, expired, completed}, "recent": table (at, count)}.
# Per-user data is columns of plain numbers and strings: a million users encode as fast as
# they did as rows.
# Version 2 adds: "tokens" gains a "joined_at" column, "left": seqs, "totals" gains "left",
# "waits" and "dropped_waits": recent seconds waited until admission and until leaving.
_TOKEN_COLUMNS = ("seq", "user_id")
_ACTIVE_COLUMNS = ("seq", "until")
_RECENT_COLUMNS = ("at", "count")


def _upgrade_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 wrote the settings, the totals, active windows and recent admissions as
    positional rows, their values in the order named here (that order is history)."""
    batch_size, interval_seconds, max_active, active_ttl_seconds, paused = data["settings"]
    admitted, expired, completed = data["totals"]
    return {
        "secret": data["secret"],
        "next_seq": data["next_seq"],
        "settings": {
            "batch_size": batch_size,
            "interval_seconds": interval_seconds,
            "max_active": max_active,
            "active_ttl_seconds": active_ttl_seconds,
            "paused": paused,
        },
        "tokens": {"seq": data["seqs"], "user_id": data["users"]},
        "waiting": data["waiting"],
        "active": columns(data["active"], ("seq", "until")),
        "completed": data["completed"],
        "last_admission_at": data["last_admission_at"],
        "waiting_since": data["waiting_since"],
        "totals": {"admitted": admitted, "expired": expired, "completed": completed},
        "recent": columns(data["recent"], ("at", "count")),
    }


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 knew no leaving and no join times: nobody left, and the join times of
    tokens issued then are unknown (NaN: they count in no figure of waits)."""
    tokens = data["tokens"]
    return {
        **data,
        "tokens": {**tokens, "joined_at": [None] * len(tokens["seq"])},
        "left": [],
        "totals": {**data["totals"], "left": 0},
        "waits": [],
        "dropped_waits": [],
    }


SNAPSHOT = SnapshotFormat("waiting room", 2, {0: _upgrade_v0, 1: _upgrade_v1})
NAN = float("nan")


def percentile(values: deque[float], q: float) -> float | None:
    """The `q` quantile of `values` (None when empty), rounded to 0.1 s."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1)


class WaitingRoom:
    def __init__(self, settings: RoomSettings) -> None:
        self.settings = settings
        self.secret = b""
        self.next_seq = 1
        self.user_of: dict[int, str] = {}  # every token ever issued
        self.seq_of: dict[str, int] = {}  # each user's latest token
        self.waiting: SortedList[int] = SortedList()
        self.active: dict[int, float] = {}  # seq -> active until
        self.active_by_deadline: SortedList[tuple[float, int]] = SortedList()
        self.completed: set[int] = set()
        self.left: set[int] = set()
        # When each token was issued, by seq - 1 (seqs are dense from 1): 8 bytes a token.
        self.joined_at = array("d")
        self.waits: deque[float] = deque(maxlen=WAITS_KEPT)  # joined -> admitted, recent
        self.dropped_waits: deque[float] = deque(maxlen=WAITS_KEPT)  # joined -> left, recent
        self.left_total = 0
        self.last_admission_at: float | None = None
        self.waiting_since: float | None = None  # when the queue last went from empty to not
        self.admitted_total = 0
        self.expired_total = 0
        self.completed_total = 0
        self._recent: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)
        # The views of active tokens (with their genuine token), once made: an active user's
        # every request goes through the gate, and the HMAC and the view were most of its
        # cost. A view is immutable and stays true while the token is active; bounded by
        # `active`.
        self._active_views: dict[int, TokenView] = {}

    # -- tokens ------------------------------------------------------------------------------

    def token_for(self, seq: int) -> str:
        mac = hmac.new(self.secret, seq.to_bytes(8, "big"), hashlib.sha256).digest()[:15]
        return f"{seq}.{base64.urlsafe_b64encode(mac).decode()}"

    def seq_for(self, token: str) -> int | None:
        """The sequence number a genuine token names; None for anything forged or malformed."""
        head, dot, _ = token.partition(".")
        # ASCII only: `"²".isdigit()` is true, yet `int("²")` raises, and `compare_digest`
        # raises on a str that is not ASCII.
        if not dot or not token.isascii() or not head.isdigit() or len(head) > 18:
            return None
        seq = int(head)
        known = self._active_views.get(seq)
        if known is not None:
            genuine = known.token
        elif seq in self.user_of:
            genuine = self.token_for(seq)
        else:
            return None
        return seq if hmac.compare_digest(genuine, token) else None

    def issued_later(self, token: str) -> bool:
        """Whether `token` is genuine but newer than anything this state has applied: a copy
        of the room (a cluster's gateway) that has not yet heard of its issue."""
        head, dot, _ = token.partition(".")
        if not dot or not token.isascii() or not head.isdigit() or len(head) > 18:
            return False
        seq = int(head)
        return seq >= self.next_seq and hmac.compare_digest(self.token_for(seq), token)

    def lookup(self, token: str, now: float) -> TokenView | None:
        """The view of a genuine token; None for anything forged or malformed."""
        seq = self.seq_for(token)
        return self.view(seq, now, token=token) if seq is not None else None

    def status_of(self, seq: int) -> TokenStatus:
        if seq in self.active:
            return PROCESSING
        if seq in self.completed:
            return COMPLETED
        if self.waiting and seq >= self.waiting[0] and seq in self.waiting:
            return WAITING
        return LEFT if seq in self.left else EXPIRED

    def rank_of(self, seq: int) -> int | None:
        index = self.waiting.bisect_left(seq)
        if index < len(self.waiting) and self.waiting[index] == seq:
            return index + 1
        return None

    def view(self, seq: int, now: float, *, token: str | None = None) -> TokenView:
        """The token's read view; pass `token` when it is known to be genuine (saves an
        HMAC)."""
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
            eta_seconds=self.eta(rank, now) if rank is not None else None,
            active_until=self.active.get(seq),
        )
        if status == PROCESSING:
            self._active_views[seq] = view
        return view

    def current_seq(self, user_id: str) -> int | None:
        return self.seq_of.get(user_id)

    # -- rates and deadlines -------------------------------------------------------------------

    def admission_rate(self) -> float:
        """Users admitted per second: measured over recent batches, else the configured rate."""
        if len(self._recent) >= 2:
            span = self._recent[-1][0] - self._recent[0][0]
            admitted = sum(count for _, count in list(self._recent)[1:])
            if span > 0 and admitted > 0:
                return admitted / span
        s = self.settings
        return s.batch_size / s.interval_seconds if s.interval_seconds > 0 else float(s.batch_size)

    def eta(self, rank: int, now: float) -> float | None:
        """Seconds until `rank` is admitted; None while admission is paused."""
        s = self.settings
        if s.paused:
            return None
        rate = self.admission_rate()
        per_batch = s.batch_size / rate if rate > 0 else s.interval_seconds
        batches_ahead = (rank - 1) // max(1, s.batch_size)
        until_next = max(0.0, self.next_admission_at(now) - now)
        return round(until_next + batches_ahead * per_batch, 1)

    def admission_due(self) -> float | None:
        """When the next batch is admitted: one interval after the last batch, and never
        sooner than one interval after the queue stopped being empty (so a batch gathers
        everyone who arrived in the meantime, also after a quiet spell)."""
        if not self.waiting or self.waiting_since is None:
            return None
        interval = self.settings.interval_seconds
        due = self.waiting_since + interval
        if self.last_admission_at is not None:
            due = max(due, self.last_admission_at + interval)
        return due

    def next_admission_at(self, now: float) -> float:
        due = self.admission_due()
        return now + self.settings.interval_seconds if due is None else max(now, due)

    def capacity(self, leaving: int = 0) -> int:
        """How many may be admitted now, once `leaving` active users have left."""
        s = self.settings
        if s.max_active is None:
            return s.batch_size
        return max(0, min(s.batch_size, s.max_active - (len(self.active) - leaving)))

    def next_deadline(self) -> float | None:
        deadlines = []
        if self.active_by_deadline:
            deadlines.append(self.active_by_deadline[0][0])
        due = self.admission_due()
        if due is not None and not self.settings.paused and self.capacity() > 0:
            deadlines.append(due)
        return min(deadlines) if deadlines else None

    # -- decisions (no mutation) ---------------------------------------------------------------

    def join(self, user_id: str, now: float) -> list[Event]:
        seq = self.seq_of.get(user_id)
        if seq is not None and self.status_of(seq) in (WAITING, PROCESSING):
            return []
        return [Joined(self.next_seq, user_id, now)]

    def tick(self, now: float) -> list[Event]:
        """Expire active windows that ran out and admit the next batch if it is due."""
        events: list[Event] = []
        due = tuple(seq for until, seq in self.active_by_deadline.irange(maximum=(now, 2**63)))
        if due:
            events.append(ActiveExpired(due))
        start = self.last_admission_at if self.last_admission_at is not None else 0.0
        if (
            self.waiting
            and not self.settings.paused
            and now >= start + self.settings.interval_seconds
        ):
            count = min(self.capacity(leaving=len(due)), len(self.waiting))
            if count > 0:
                seqs = tuple(self.waiting[:count])
                events.append(Admitted(seqs, now, now + self.settings.active_ttl_seconds))
        return events

    def complete(self, seq: int) -> list[Event]:
        return [TokenCompleted(seq)] if seq in self.active else []

    def leave(self, seq: int, now: float) -> list[Event]:
        """The buyer leaves: a waiting (or active) token becomes LEFT and those behind move
        up; leaving again changes nothing. Refused for a token already used or expired."""
        status = self.status_of(seq)
        if status == LEFT:
            return []
        if status in (COMPLETED, EXPIRED):
            raise refusal_for(status)
        return [Left(seq, now)]

    def waited(self, seq: int, now: float) -> float:
        """Seconds since the token was issued (NaN if its join time is unknown)."""
        return now - self.joined_at[seq - 1] if seq <= len(self.joined_at) else NAN

    def configure(self, **changes: Any) -> list[Event]:
        """Events of a live reconfiguration; unknown or invalid settings are refused."""
        merged = dataclasses.asdict(self.settings)
        unknown = set(changes) - set(merged)
        if unknown:
            raise Refused(VALIDATION_ERROR, f"unknown settings: {', '.join(sorted(unknown))}")
        merged.update(changes)
        settings = RoomSettings(**merged)
        if settings.batch_size < 1 or settings.interval_seconds <= 0:
            raise Refused(VALIDATION_ERROR, "batch size and interval must be positive")
        if settings.active_ttl_seconds <= 0:
            raise Refused(VALIDATION_ERROR, "the active window must be positive")
        if settings.max_active is not None and settings.max_active < 1:
            raise Refused(VALIDATION_ERROR, "maxActive must be positive or unset")
        return [RoomConfigured(**merged)]

    # -- the only mutator --------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        match event:
            case Joined(seq=seq, user_id=user, at=at):
                if not self.waiting:
                    self.waiting_since = at
                self.user_of[seq] = user
                self.seq_of[user] = seq
                self.joined_at.append(at)
                self.waiting.add(seq)
                self.next_seq = seq + 1
            case Admitted(seqs=seqs, at=at, active_until=until):
                for seq in seqs:
                    self.waiting.remove(seq)
                    self.active[seq] = until
                    self.active_by_deadline.add((until, seq))
                    self._note_wait(self.waits, seq, at)
                self.last_admission_at = at
                self.admitted_total += len(seqs)
                self._recent.append((at, len(seqs)))
            case ActiveExpired(seqs=seqs):
                for seq in seqs:
                    self._deactivate(seq)
                self.expired_total += len(seqs)
            case TokenCompleted(seq=seq):
                self._deactivate(seq)
                self.completed.add(seq)
                self.completed_total += 1
            case RoomConfigured():
                self.settings = RoomSettings(
                    event.batch_size,
                    event.interval_seconds,
                    event.max_active,
                    event.active_ttl_seconds,
                    event.paused,
                )
            case RoomOpened(secret=secret):
                self.secret = bytes.fromhex(secret)
                self._active_views.clear()
            case Left(seq=seq, at=at):
                if seq in self.waiting:
                    self.waiting.remove(seq)
                    if not self.waiting:
                        self.waiting_since = None
                self._deactivate(seq)
                self.left.add(seq)
                self.left_total += 1
                self._note_wait(self.dropped_waits, seq, at)
            case _:
                raise TypeError(f"a waiting room cannot apply {event!r}")

    def _note_wait(self, waits: deque[float], seq: int, at: float) -> None:
        waited = self.waited(seq, at)
        if waited == waited:  # not NaN: the join time is known
            waits.append(waited)

    def _deactivate(self, seq: int) -> None:
        self._active_views.pop(seq, None)
        until = self.active.pop(seq, None)
        if until is not None:
            self.active_by_deadline.discard((until, seq))

    # -- snapshots and stats -----------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        return SNAPSHOT.write(
            secret=self.secret.hex(),
            next_seq=self.next_seq,
            settings=dataclasses.asdict(self.settings),
            tokens={
                "seq": list(self.user_of.keys()),
                "user_id": list(self.user_of.values()),
                "joined_at": [t if t == t else None for t in self.joined_at],
            },
            waiting=list(self.waiting),
            active={"seq": list(self.active.keys()), "until": list(self.active.values())},
            completed=sorted(self.completed),
            left=sorted(self.left),
            last_admission_at=self.last_admission_at,
            waiting_since=self.waiting_since,
            totals={
                "admitted": self.admitted_total,
                "expired": self.expired_total,
                "completed": self.completed_total,
                "left": self.left_total,
            },
            recent=columns(self._recent, _RECENT_COLUMNS),
            waits=list(self.waits),
            dropped_waits=list(self.dropped_waits),
        )

    def load_snapshot(self, data: dict[str, Any]) -> None:
        """Take the state of a snapshot of any version `SNAPSHOT` reads (raises
        `SnapshotRefused` for others)."""
        data = SNAPSHOT.read(data)
        self.secret = bytes.fromhex(data["secret"])
        self._active_views.clear()
        self.next_seq = data["next_seq"]
        self.settings = RoomSettings(**data["settings"])
        self.user_of = dict(rows(data["tokens"], _TOKEN_COLUMNS))
        self.seq_of = {user: seq for seq, user in self.user_of.items()}
        self.joined_at = array("d", (NAN if t is None else t for t in data["tokens"]["joined_at"]))
        self.waiting = SortedList(data["waiting"])
        self.active = dict(rows(data["active"], _ACTIVE_COLUMNS))
        self.active_by_deadline = SortedList((until, seq) for seq, until in self.active.items())
        self.completed = set(data["completed"])
        self.left = set(data["left"])
        self.last_admission_at = data["last_admission_at"]
        self.waiting_since = data["waiting_since"]
        totals = data["totals"]
        self.admitted_total = totals["admitted"]
        self.expired_total = totals["expired"]
        self.completed_total = totals["completed"]
        self.left_total = totals["left"]
        self._recent = deque(rows(data["recent"], _RECENT_COLUMNS), maxlen=RATE_WINDOW)
        self.waits = deque(data["waits"], maxlen=WAITS_KEPT)
        self.dropped_waits = deque(data["dropped_waits"], maxlen=WAITS_KEPT)

    def summary(self) -> dict[str, Scalar]:
        s = self.settings
        return {
            "waiting": len(self.waiting),
            "active": len(self.active),
            "admitted": self.admitted_total,
            "expired": self.expired_total,
            "completed": self.completed_total,
            "left": self.left_total,
            "paused": s.paused,
            "batchSize": s.batch_size,
            "intervalSeconds": s.interval_seconds,
            "maxActive": s.max_active,
            "activeTtlSeconds": s.active_ttl_seconds,
            "admissionRate": round(self.admission_rate(), 3),
            "lastAdmissionAt": self.last_admission_at,
        }
