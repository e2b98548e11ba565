"""The websocket hub: one connection per browser, pushed queue, seat and hold events.

Events reach the hub after each durable commit (`EngineSystem.subscribe`). The hub never scans
every connection for an event: connections are indexed by token sequence number (queue
events), by user (hold events) and by subscribed date (seat events), so an admission of 100
users touches 100 entries whatever the number of connected clients.

Ranks are not pushed per event: an admission only marks them dirty, and one pass at most once
a second reads every waiting connection's rank from the waiting room's read view (O(log n)
each) and pushes those that changed.

A slow client must not slow anyone: each connection has its own writer task and a bounded
outbox in which a newer rank replaces an unsent one and a newer status of a seat replaces the
unsent older one. A client so far behind that the outbox still fills up is disconnected
(code 1013, try again later); reconnecting gives it a fresh state.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import anyio
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from engine.actors.waiting_room import KEY as WAITING_ROOM_KEY
from engine.domain.seat_map import (
    AVAILABLE,
    CHECKOUT,
    HELD,
    SOLD,
    HoldExpired,
    HoldReleased,
    SeatHeld,
    SeatsLocked,
    SeatsSold,
    SeatsUnlocked,
)
from engine.domain.waiting_room import (
    COMPLETED,
    EXPIRED,
    PROCESSING,
    WAITING,
    ActiveExpired,
    Admitted,
    RoomConfigured,
    TokenCompleted,
    TokenView,
)
from engine.errors import NOT_FOUND, TOKEN_INVALID, VALIDATION_ERROR
from engine.events import Event
from engine.system import EngineSystem
from engine.wakeup import wakeup_factory
from web.body import validation_error
from web.errors import TOKEN_MISSING, UNAVAILABLE
from web.schemas import (
    ErrorMessage,
    HoldExpiredMessage,
    HoldExpiringMessage,
    QueueAdmittedMessage,
    QueueCompletedMessage,
    QueueExpiredMessage,
    ResponseModel,
    SeatChangedMessage,
    SubscribedMessage,
    SubscribeMessage,
    client_message,
    instant,
)

log = logging.getLogger(__name__)

RANK_PERIOD = 1.0  # seconds between two rank passes: at most one rank message a second
RANK_CHUNK = 500  # connections per slice of a rank pass, so other work interleaves
OUTBOX_LIMIT = 2048  # pending messages per connection before it counts as hopelessly slow
MAX_SUBSCRIPTIONS = 16  # dates one connection may follow
MAX_CLIENT_MESSAGE = 4096  # bytes
HOLD_WARNING_SECONDS = 60.0  # `hold.expiring` this long before a hold lapses (or at half-time)
ETA_DRIFT = 2.0  # push an unchanged rank again only if its ETA moved this much

GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013

RANK_KEY = "rank"

STATUS_AFTER: dict[type[Event], str] = {
    SeatHeld: HELD,
    HoldReleased: AVAILABLE,
    HoldExpired: AVAILABLE,
    SeatsLocked: CHECKOUT,
    SeatsUnlocked: HELD,
    SeatsSold: SOLD,
}


def dump(message: ResponseModel) -> str:
    return message.model_dump_json()


def rank_text(rank: int, eta: float | None) -> str:
    # The hottest message (10,000 waiting clients after every admission): formatted by hand;
    # tests check it against QueueRankMessage.
    return f'{{"type":"queue.rank","rank":{rank},"etaSeconds":{json.dumps(eta)}}}'


class Connection:
    """One websocket: its identity, subscriptions, outbox and writer."""

    __slots__ = (
        "_close_code",
        "_limit",
        "_new_wakeup",
        "_outbox",
        "_wakeup",
        "dates",
        "last_eta",
        "last_eta_at",
        "last_rank",
        "scope",
        "seq",
        "user_id",
        "websocket",
    )

    def __init__(self, websocket: WebSocket, seq: int, user_id: str, limit: int) -> None:
        self.websocket = websocket
        self.seq = seq
        self.user_id = user_id
        self.dates: set[str] = set()
        self.last_rank: int | None = None
        self.last_eta: float | None = None
        self.last_eta_at = 0.0
        self.scope: anyio.CancelScope | None = None
        self._limit = limit
        self._outbox: OrderedDict[Hashable, str] = OrderedDict()
        # A rank pass wakes every waiting client's writer: the cheapest one-shot wake-up.
        self._new_wakeup = wakeup_factory()
        self._wakeup = self._new_wakeup()
        self._close_code: int | None = None

    def push(self, key: Hashable, text: str) -> None:
        """Queue a message; one with the same key still unsent is replaced (coalescing)."""
        outbox = self._outbox
        if key not in outbox and len(outbox) >= self._limit:
            log.info("websocket of %s is too slow; disconnecting it", self.user_id)
            self.abort()
            return
        outbox[key] = text
        self._wakeup.set()

    def close(self, code: int) -> None:
        """Close as soon as the writer is free (pending messages are dropped)."""
        self._close_code = code
        self._wakeup.set()

    def abort(self) -> None:
        self._close_code = TRY_AGAIN_LATER
        self._outbox.clear()
        if self.scope is not None:
            self.scope.cancel()

    @property
    def aborted(self) -> bool:
        scope = self.scope
        return self._close_code == TRY_AGAIN_LATER and scope is not None and scope.cancel_called

    @property
    def pending(self) -> int:
        return len(self._outbox)

    async def write_loop(self) -> None:
        while True:
            if self._close_code is not None:
                await self.websocket.close(self._close_code)
                return
            if not self._outbox:
                self._wakeup = self._new_wakeup()
                await self._wakeup.wait()
                continue
            _, text = self._outbox.popitem(last=False)
            await self.websocket.send_text(text)


class Hub:
    def __init__(self, hold_seconds: float) -> None:
        self.hold_warning = min(HOLD_WARNING_SECONDS, hold_seconds / 2)
        self.system: EngineSystem | None = None
        self.connections: set[Connection] = set()
        self._by_seq: dict[int, set[Connection]] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self._by_date: dict[str, set[Connection]] = {}
        self._waiting: set[int] = set()  # seqs of connections whose token is WAITING
        # (warn at, date actor key, seat, reservation id, user): one per hold, checked when due.
        self._warnings: list[tuple[float, str, int, str, str]] = []
        self._unique = itertools.count()
        self._ranks_dirty: anyio.Event | None = None
        self._timer_wakeup: anyio.Event | None = None

    def attach(self, system: EngineSystem) -> None:
        self.system = system
        system.subscribe(self.on_events)

    @property
    def count(self) -> int:
        return len(self.connections)

    # -- background work -----------------------------------------------------------------------

    async def run(self) -> None:
        """The rank pass and the hold-warning timer, until cancelled."""
        self._ranks_dirty = anyio.Event()
        self._timer_wakeup = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._rank_loop)
            tg.start_soon(self._warning_loop)

    async def _rank_loop(self) -> None:
        while True:
            assert self._ranks_dirty is not None
            await self._ranks_dirty.wait()
            self._ranks_dirty = anyio.Event()
            try:
                await self._push_ranks()
            except Exception:
                log.exception("rank pass failed")
            await anyio.sleep(RANK_PERIOD)

    async def _push_ranks(self) -> None:
        system = self.system
        if system is None:
            return
        room = system.waiting_room.state
        for index, seq in enumerate(list(self._waiting)):
            if index % RANK_CHUNK == RANK_CHUNK - 1:
                await anyio.sleep(0)
            conns = self._by_seq.get(seq)
            rank = room.rank_of(seq) if conns and seq in self._waiting else None
            if rank is None or not conns:
                continue
            now = system.clock.now()
            eta = room.eta(rank, now)
            text: str | None = None
            for conn in conns:
                if conn.last_rank == rank and not _eta_moved(conn, eta, now):
                    continue
                text = text or rank_text(rank, eta)
                conn.last_rank, conn.last_eta, conn.last_eta_at = rank, eta, now
                conn.push(RANK_KEY, text)

    async def _warning_loop(self) -> None:
        while True:
            system = self.system
            now = system.clock.now() if system is not None else 0.0
            while system is not None and self._warnings and self._warnings[0][0] <= now:
                _, key, number, rid, user = heapq.heappop(self._warnings)
                self._warn(system, key, number, rid, user, now)
            delay = self._warnings[0][0] - now if self._warnings else math.inf
            self._timer_wakeup = wakeup = anyio.Event()
            with anyio.move_on_after(delay):
                await wakeup.wait()

    def _warn(
        self, system: EngineSystem, key: str, number: int, rid: str, user: str, now: float
    ) -> None:
        conns = self._by_user.get(user)
        actor = system.dates.get(key)
        if not conns or actor is None:
            return
        seat = actor.state.seats[number - 1]
        if seat.status != HELD or seat.reservation_id != rid or seat.until is None:
            return  # released, paid or already expired: nothing to warn about
        text = dump(HoldExpiringMessage(reservation_id=rid, seconds_left=round(seat.until - now)))
        for conn in conns:
            conn.push(("expiring", rid), text)

    # -- events from the engine ----------------------------------------------------------------

    def on_events(self, actor_key: str, events: Sequence[Event]) -> None:
        if actor_key == WAITING_ROOM_KEY:
            self._on_queue_events(events)
        elif actor_key.startswith("date:"):
            self._on_seat_events(actor_key, events)

    def _on_queue_events(self, events: Sequence[Event]) -> None:
        for event in events:
            match event:
                case Admitted(seqs=seqs, active_until=until):
                    text = dump(QueueAdmittedMessage(active_until=instant(until)))
                    for seq in seqs:
                        self._waiting.discard(seq)
                        self._send_to_seq(seq, text)
                    self._mark_ranks_dirty()
                case ActiveExpired(seqs=seqs):
                    text = dump(QueueExpiredMessage())
                    for seq in seqs:
                        self._send_to_seq(seq, text)
                case TokenCompleted(seq=seq):
                    self._send_to_seq(seq, dump(QueueCompletedMessage()))
                case RoomConfigured():
                    self._mark_ranks_dirty()  # the ETAs move with the batch size and interval

    def _send_to_seq(self, seq: int, text: str) -> None:
        for conn in self._by_seq.get(seq, ()):
            conn.push(next(self._unique), text)

    def _on_seat_events(self, actor_key: str, events: Sequence[Event]) -> None:
        system = self.system
        actor = system.dates.get(actor_key) if system is not None else None
        if actor is None:
            return
        subscribers = self._by_date.get(actor_key)
        for event in events:
            if isinstance(event, SeatHeld) and event.user_id in self._by_user:
                # Only holders listening now get a warning: the heap then stays as small as
                # the connected crowd's holds, however many holds plain HTTP clients make.
                self._schedule_warning(actor_key, event)
            elif isinstance(event, HoldExpired):
                text = dump(HoldExpiredMessage(reservation_id=event.reservation_id))
                for conn in self._by_user.get(event.user_id, ()):
                    conn.push(next(self._unique), text)
            if not subscribers:
                continue
            status = STATUS_AFTER[type(event)]
            numbers = getattr(event, "seats", None) or (getattr(event, "seat", 0),)
            for number in numbers:
                text = dump(
                    SeatChangedMessage(
                        concert_id=actor.info.concert_id,
                        date=actor.info.date,
                        seat=number,
                        status=status,  # type: ignore[arg-type]
                    )
                )
                for conn in subscribers:
                    conn.push(("seat", actor_key, number), text)

    def _schedule_warning(self, actor_key: str, held: SeatHeld) -> None:
        entry = (held.until - self.hold_warning, actor_key, held.seat, held.reservation_id)
        heapq.heappush(self._warnings, (*entry, held.user_id))
        if self._warnings[0][3] == held.reservation_id and self._timer_wakeup is not None:
            self._timer_wakeup.set()

    def _mark_ranks_dirty(self) -> None:
        if self._ranks_dirty is not None:
            self._ranks_dirty.set()

    # -- connections ---------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        """The `/ws?token=...` endpoint."""
        await websocket.accept()
        system = self.system
        if system is None or not system.ready:
            await _refuse(websocket, UNAVAILABLE, "the service is starting", TRY_AGAIN_LATER)
            return
        token = websocket.query_params.get("token", "")
        view = system.lookup_token(token) if token else None
        seq = system.waiting_room.state.seq_for(token) if view is not None else None
        if view is None or seq is None:
            code = TOKEN_INVALID if token else TOKEN_MISSING
            await _refuse(websocket, code, "a valid queue token is required", POLICY_VIOLATION)
            return
        conn = Connection(websocket, seq, view.user_id, OUTBOX_LIMIT)
        self._add(conn, view)
        try:
            async with anyio.create_task_group() as tg:
                conn.scope = tg.cancel_scope
                tg.start_soon(self._writer, conn, tg.cancel_scope)
                await self._read_loop(conn)
                tg.cancel_scope.cancel()
        finally:
            self._remove(conn)
        if conn.aborted:
            with anyio.move_on_after(1, shield=True), contextlib.suppress(Exception):
                await websocket.close(TRY_AGAIN_LATER)

    async def _writer(self, conn: Connection, scope: anyio.CancelScope) -> None:
        # The client going away ends the writer; the reader notices it too.
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await conn.write_loop()
        scope.cancel()

    async def _read_loop(self, conn: Connection) -> None:
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = message["bytes"].decode("utf-8", errors="replace")
            self.handle_client_message(conn, raw or "")

    def _add(self, conn: Connection, view: TokenView) -> None:
        self.connections.add(conn)
        self._by_seq.setdefault(conn.seq, set()).add(conn)
        self._by_user.setdefault(conn.user_id, set()).add(conn)
        # The current state first, so a client needs no separate request to start.
        if view.status == WAITING and view.rank is not None:
            self._waiting.add(conn.seq)
            conn.last_rank, conn.last_eta = view.rank, view.eta_seconds
            conn.last_eta_at = self.system.clock.now() if self.system else 0.0
            conn.push(RANK_KEY, rank_text(view.rank, view.eta_seconds))
        elif view.status == PROCESSING:
            text = dump(QueueAdmittedMessage(active_until=instant(view.active_until)))
            conn.push(next(self._unique), text)
        elif view.status == COMPLETED:
            conn.push(next(self._unique), dump(QueueCompletedMessage()))
        elif view.status == EXPIRED:
            conn.push(next(self._unique), dump(QueueExpiredMessage()))

    def _remove(self, conn: Connection) -> None:
        self.connections.discard(conn)
        _discard(self._by_seq, conn.seq, conn)
        _discard(self._by_user, conn.user_id, conn)
        if conn.seq not in self._by_seq:
            self._waiting.discard(conn.seq)
        for key in conn.dates:
            _discard(self._by_date, key, conn)

    def handle_client_message(self, conn: Connection, raw: str) -> None:
        """Apply a subscribe/unsubscribe; anything malformed gets an `error` event."""
        if len(raw) > MAX_CLIENT_MESSAGE:
            self._error(conn, VALIDATION_ERROR, f"messages are limited to {MAX_CLIENT_MESSAGE} B")
            return
        try:
            message = client_message.validate_json(raw)
        except ValidationError as invalid:
            self._error(conn, VALIDATION_ERROR, validation_error(invalid).message)
            return
        system = self.system
        actor = system.date_actor(message.concert_id, message.date) if system else None
        if actor is None:
            self._error(conn, NOT_FOUND, f"no date {message.date} for {message.concert_id}")
            return
        if isinstance(message, SubscribeMessage):
            if actor.key not in conn.dates and len(conn.dates) >= MAX_SUBSCRIPTIONS:
                self._error(conn, VALIDATION_ERROR, f"at most {MAX_SUBSCRIPTIONS} subscriptions")
                return
            conn.dates.add(actor.key)
            self._by_date.setdefault(actor.key, set()).add(conn)
            reply = SubscribedMessage(
                type="subscribed", concert_id=message.concert_id, date=message.date
            )
        else:
            conn.dates.discard(actor.key)
            _discard(self._by_date, actor.key, conn)
            reply = SubscribedMessage(
                type="unsubscribed", concert_id=message.concert_id, date=message.date
            )
        conn.push(next(self._unique), dump(reply))

    def _error(self, conn: Connection, code: str, message: str) -> None:
        conn.push(next(self._unique), dump(ErrorMessage(code=code, message=message)))

    async def close_all(self, code: int = GOING_AWAY, wait: float = 2.0) -> None:
        """Close every websocket (on shutdown: 1001 going away) and wait until they are gone."""
        for conn in list(self.connections):
            conn.close(code)
        with anyio.move_on_after(wait):
            while self.connections:
                await anyio.sleep(0.02)


def _eta_moved(conn: Connection, eta: float | None, now: float) -> bool:
    if (eta is None) != (conn.last_eta is None):
        return True
    if eta is None or conn.last_eta is None:
        return False
    expected = conn.last_eta - (now - conn.last_eta_at)
    return abs(eta - expected) >= ETA_DRIFT


def _discard(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]


async def _refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    await websocket.send_text(dump(ErrorMessage(code=code, message=message)))
    await websocket.close(close_code)
