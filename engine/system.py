"""`EngineSystem`: the engine in one process, behind its one face (engine/face.py).

It builds, recovers, runs and stops every actor, routes each command to the actor that takes
it (`ask`), and answers the read views straight from the actors' published state, so reads
never queue behind writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator, Callable, Container, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from engine.actor import Actor, EventListener, ExpireDue, Reply
from engine.actors.checkout import CheckoutActor, checkout_key
from engine.actors.concert_date import ConcertDateActor
from engine.actors.room import RoomActor
from engine.actors.waiting_room import KEY as ROOM_KEY
from engine.actors.waiting_room import BaseRoomActor, WaitingRoomActor
from engine.actors.wallet import WalletActor, shard_of, wallet_key
from engine.catalog import CatalogStore, ConcertDateInfo, ConcertInfo, date_key, room_key
from engine.clock import Clock, SystemClock
from engine.commands import (
    CheckoutCommand,
    Command,
    DateCommand,
    OpenRoom,
    PaymentStatusOf,
    Release,
    Reschedule,
    Resolve,
    RoomCommand,
    Unlock,
    WalletCommand,
)
from engine.config import EngineConfig
from engine.domain.checkout import COMPLETED, FAILED, STARTED
from engine.domain.concert_room import room_figures
from engine.domain.seat_map import HELD
from engine.domain.waiting_room import ActiveExpired
from engine.errors import DATE_ON_SALE, NOT_FOUND, ActorUnavailable, EngineError, Refused
from engine.events import Event
from engine.journal import Journal
from engine.placement import EVERYTHING, Peers, Placement
from engine.views import (
    ActorDetail,
    ActorKind,
    ActorStats,
    ClusterView,
    DateView,
    JournalStats,
    OnSale,
    Origin,
    PaymentView,
    QueuePosition,
    Reservation,
    RoomFigures,
    RoomState,
    RoomStatusView,
    SeatMapView,
    TokenView,
    Totals,
)

log = logging.getLogger(__name__)

R = TypeVar("R")
A = TypeVar("A", bound=Actor[Any])


class EngineSystem:
    """The engine's actors in this process: all of them (the default), or the shard of them
    that `placement` gives it, the others reached through `peers` (engine/placement.py)."""

    def __init__(
        self,
        journal: Journal,
        *,
        config: EngineConfig | None = None,
        clock: Clock | None = None,
        catalog: Iterable[ConcertInfo] = (),
        catalog_store: CatalogStore | None = None,
        placement: Placement = EVERYTHING,
        peers: Peers | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.clock = clock or SystemClock()
        self.journal = journal
        self.placement = placement
        self._peers = peers
        self._catalog_store = catalog_store
        self._concerts: dict[str, ConcertInfo] = {}
        self._catalog_dates: dict[tuple[str, str], ConcertDateInfo] = {}  # every date on sale
        self._dates: dict[tuple[str, str], ConcertDateActor] = {}  # this shard's, by both ids
        self._on_sales: dict[str, OnSale] = {}  # every concert with its own room
        self._rooms: dict[str, RoomActor] = {}  # this shard's concert rooms
        # The concerts with their own on-sale and room, a live view: an attribute, not a
        # property, as the hold route reads it (a property is a call).
        self.room_concerts: Container[str] = self._on_sales.keys()
        owns = placement.owns
        self._room = (
            WaitingRoomActor(self.config, journal=journal, clock=self.clock)
            if owns(ROOM_KEY)
            else None
        )
        self._wallets = [
            WalletActor(n, self.config, journal=journal, clock=self.clock)
            if owns(wallet_key(n))
            else None
            for n in range(self.config.wallet_shards)
        ]
        self._checkouts = [
            CheckoutActor(n, self.config, self, journal=journal, clock=self.clock)
            if owns(checkout_key(n))
            else None
            for n in range(self.config.checkout_shards)
        ]
        # By target: the actor of this shard that takes a command, or None if another shard's.
        self._routes: dict[ActorKind, Callable[[Any], Actor[Any] | None]] = {
            "date": self._date_for,
            "wallet": lambda command: self._wallets[self._wallet_shard(command.user_id)],
            "checkout": lambda command: self._checkouts[self._checkout_shard(command.user_id)],
            "waiting-room": self._room_for,
        }
        self._listeners: list[EventListener] = []
        self._task_group: TaskGroup | None = None
        self._actors_started: set[Actor[Any]] = set()
        self.ready = False
        for concert in catalog:
            self._add_concert(concert)
        journal.on_failure(self._poison)
        if self._room is not None:
            self._room.listeners.append(self._on_room_events)

    def _room_for(self, command: RoomCommand[Any]) -> BaseRoomActor[Any] | None:
        """The room that takes `command`: its concert's own, or the site-wide one."""
        concert_id = command.concert_id
        if concert_id is None or concert_id not in self._on_sales:
            return self._room
        return self._rooms.get(concert_id)

    # -- commands ------------------------------------------------------------------------------

    async def ask(self, command: Command[R]) -> R:
        """Run `command` on the actor that takes it; its answer once it is durable.

        Raises `Refused` (NOT_FOUND for a date that is not on sale, or the domain's refusal),
        `Overloaded`, `ActorUnavailable` or `JournalFailed` (engine/errors.py).
        """
        actor = self._routes[command.target](command)
        if actor is not None:
            return await actor.ask(command)
        return await self._ask_peer(command)

    def begin(self, command: Command[R]) -> Reply[R] | None:
        """Start `command` on its actor without waiting (`Actor.begin`); None if the actor
        is another shard's (then `ask` it). Raises what `ask` raises before the turn."""
        actor = self._routes[command.target](command)
        return actor.begin(command) if actor is not None else None

    async def _ask_peer(self, command: Command[R]) -> R:
        """`command` for an actor of another shard."""
        if self._peers is None:
            raise ActorUnavailable(f"no shard of this process takes {type(command).__name__}")
        return await self._peers.ask(self.placement.shard_of(self.key_of(command)), command)

    def key_of(self, command: Command[Any]) -> str:
        """The key of the actor that takes `command` (wherever it runs); `Refused` NOT_FOUND
        for a date command naming no date on sale."""
        if isinstance(command, DateCommand):
            where = command.where()
            if where is None or where not in self._catalog_dates:
                self._date_for(command)  # raises the command's NOT_FOUND
            assert where is not None
            return date_key(*where)
        if isinstance(command, WalletCommand):
            return wallet_key(self._wallet_shard(command.user_id))
        if isinstance(command, CheckoutCommand):
            return checkout_key(self._checkout_shard(command.user_id))
        if isinstance(command, RoomCommand):
            concert_id = command.concert_id
            if concert_id is not None and concert_id in self._on_sales:
                return room_key(concert_id)
        return ROOM_KEY

    def _date_for(self, command: DateCommand[Any]) -> ConcertDateActor | None:
        where = command.where()
        actor = self._dates.get(where) if where is not None else None
        if actor is None and (where is None or where not in self._catalog_dates):
            if isinstance(command, Release):
                raise Refused(NOT_FOUND, f"no reservation {command.reservation_id}")
            assert where is not None  # every other date command names its date
            raise Refused(NOT_FOUND, self._missing_date(*where))
        return actor

    def _missing_date(self, concert_id: str, date: str) -> str:
        if concert_id not in self._concerts:
            return f"no concert {concert_id}"
        return f"no date {date} for concert {concert_id}"

    def _wallet_shard(self, user_id: str) -> int:
        return shard_of(user_id, self.config.wallet_shards)

    def _checkout_shard(self, user_id: str) -> int:
        return shard_of(user_id, self.config.checkout_shards)

    def _wallet_of(self, user_id: str) -> WalletActor:
        return _here(self._wallets[self._wallet_shard(user_id)], "wallet")

    def _checkout_of(self, user_id: str) -> CheckoutActor:
        return _here(self._checkouts[self._checkout_shard(user_id)], "checkout")

    async def release_holds(self, user_id: str) -> None:
        """Release every hold the user still has, on this shard's dates and on the others'
        (best effort: a hold not released here still lapses)."""
        self.release_local_holds(user_id)
        if self._peers is not None:
            await self._peers.release_holds(user_id)

    def release_local_holds(self, user_id: str) -> None:
        """Release the user's holds on this shard's dates (told: no waiting for them)."""
        for actor in self._dates.values():
            for seat in actor.state.seats_of(user_id):
                if seat.status == HELD and seat.reservation_id is not None:
                    with contextlib.suppress(EngineError):
                        actor.tell(Release(user_id, seat.reservation_id))

    async def add_concert(self, concert: ConcertInfo) -> ConcertInfo:
        """Put a concert (or more dates of one) on sale: durable in the catalog first, so a
        restart finds the dates. A date already on sale keeps its seats and price: changing
        them is refused (DATE_ON_SALE), as it would corrupt its seat map."""
        for index, info in enumerate(concert.dates):
            known = self._catalog_dates.get((info.concert_id, info.date))
            if known is not None and known != info:
                raise Refused(
                    DATE_ON_SALE,
                    f"date {info.date} is on sale with {known.seats} seats at "
                    f"{known.price}; it cannot be changed",
                    field=f"dates.{index}",
                )
        if self._catalog_store is not None:
            await self._catalog_store.add_concert(concert)
        known_concert = self._concerts.get(concert.concert_id)
        if known_concert is not None:
            merged = {d.key: d for d in (*known_concert.dates, *concert.dates)}
            concert = ConcertInfo(
                concert.concert_id, concert.title, concert.venue, tuple(merged.values())
            )
        if concert.on_sale is None and known_concert is not None:
            concert = dataclasses.replace(concert, on_sale=known_concert.on_sale)
        rescheduled = known_concert is not None and concert.on_sale != known_concert.on_sale
        added: list[Actor[Any]] = list(self._add_concert(concert))
        room = self._rooms.get(concert.concert_id)
        new_room = room is not None and room not in self._actors_started
        if room is not None and new_room:
            added.append(room)
        if self._task_group is not None:
            histories = await self.journal.load([a.key for a in added])
            for actor in added:
                await actor.recover(histories.get(actor.key))
                await self._task_group.start(actor.run)
                self._actors_started.add(actor)
            if room is not None and new_room:
                await room.ask(OpenRoom(concert.concert_id))
            elif room is not None and rescheduled and concert.on_sale is not None:
                await room.ask(Reschedule.of(concert.concert_id, **_fields(concert.on_sale)))
        return self._concerts[concert.concert_id]

    def register_concert(self, concert: ConcertInfo) -> None:
        """Know of a concert already durable in the catalog (put on sale elsewhere: another
        process of a cluster did), building this shard's actors of its dates; they are not
        started (a running engine adds concerts with `add_concert`)."""
        self._add_concert(concert)

    def _add_concert(self, concert: ConcertInfo) -> list[ConcertDateActor]:
        self._concerts[concert.concert_id] = concert
        on_sale = concert.on_sale
        if on_sale is not None:
            self._add_room(concert.concert_id, on_sale)
        added = []
        for info in concert.dates:
            where = (info.concert_id, info.date)
            self._catalog_dates[where] = info
            if where in self._dates or not self.placement.owns(info.key):
                continue
            actor = ConcertDateActor(info, self.config, journal=self.journal, clock=self.clock)
            actor.listeners.extend(self._listeners)
            self._dates[where] = actor
            added.append(actor)
        return added

    def _add_room(self, concert_id: str, on_sale: OnSale) -> None:
        first = concert_id not in self._on_sales
        self._on_sales[concert_id] = on_sale
        key = room_key(concert_id)
        if not first or not self.placement.owns(key):
            return
        actor = RoomActor(concert_id, on_sale, self.config, journal=self.journal, clock=self.clock)
        actor.listeners.extend(self._listeners)
        actor.listeners.append(self._on_room_events)
        self._rooms[concert_id] = actor

    # -- read views ----------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def token(self, token: str) -> TokenView | None:
        view = _here(self._room, "waiting room").lookup(token)
        if view is None and "~" in token:  # `<concertId>~<seq>.<mac>`: a concert room's
            room = self._rooms.get(token.partition("~")[0])
            if room is not None:
                return room.lookup(token)
        return view

    def issued_later(self, token: str) -> bool:
        """Whether `token` is genuine but newer than this copy of its room (a gateway's)."""
        if "~" in token:
            room = self._rooms.get(token.partition("~")[0])
            return room is not None and room.state.issued_later(token)
        return _here(self._room, "waiting room").state.issued_later(token)

    def position(self, seq: int, concert_id: str | None = None) -> QueuePosition | None:
        if concert_id is None:
            return _here(self._room, "waiting room").position(seq)
        room = self._rooms.get(concert_id)
        return room.position(seq) if room is not None else None

    def room_status(self, concert_id: str | None) -> RoomStatusView | None:
        """`GET /api/queue/status`: a concert's room, or the site-wide one (None)."""
        if concert_id is not None and concert_id in self._on_sales:
            room = self._rooms.get(concert_id)
            return room.status() if room is not None else None
        site = _here(self._room, "waiting room")
        state = site.state
        now = self.clock.now()
        return RoomStatusView(
            concert_id=None,
            state="paused" if state.settings.paused else "open",
            waiting=len(state.waiting),
            pre_queued=0,
            starts_at=None,
            estimated_wait_seconds=state.eta(len(state.waiting) + 1, now),
        )

    def rooms(self) -> tuple[RoomFigures, ...]:
        """Every room of this process with its figures: the site-wide one first."""
        figures = []
        if self._room is not None:
            state = self._room.state
            status: RoomState = "paused" if state.settings.paused else "open"
            figures.append(room_figures(state, None, status, self.clock.now()))
        for concert_id in sorted(self._rooms):
            figures.append(self._rooms[concert_id].figures())
        return tuple(figures)

    def concerts(self) -> tuple[ConcertInfo, ...]:
        return tuple(sorted(self._concerts.values(), key=lambda c: c.concert_id))

    def concert(self, concert_id: str) -> ConcertInfo | None:
        return self._concerts.get(concert_id)

    def has_date(self, concert_id: str, date: str) -> bool:
        return (concert_id, date) in self._catalog_dates

    def dates(self, concert_id: str) -> tuple[DateView, ...]:
        concert = self._concerts.get(concert_id)
        if concert is None:
            return ()
        views = []
        for info in sorted(concert.dates, key=lambda d: d.date):
            actor = self._dates.get((info.concert_id, info.date))
            if actor is not None:
                free = len(actor.view().available)
                views.append(DateView(info.date, free, info.seats, info.price))
        return tuple(views)

    def seat_map(self, concert_id: str, date: str) -> SeatMapView | None:
        actor = self._dates.get((concert_id, date))
        return actor.view() if actor is not None else None

    def balance(self, user_id: str) -> int:
        return self._wallet_of(user_id).state.balance(user_id)

    def reservations(self, user_id: str) -> tuple[Reservation, ...]:
        found: list[Reservation] = []
        for actor in self._dates.values():
            found += actor.reservations_of(user_id)
        return tuple(sorted(found, key=lambda r: (r.concert_id, r.date, r.seat)))

    def payment(self, user_id: str, key: str) -> PaymentView | None:
        payment = self._checkout_of(user_id).state.for_key(user_id, key)
        return payment.view() if payment is not None else None

    def actor_stats(self) -> tuple[ActorStats, ...]:
        return tuple(actor.stats() for actor in self._actors())

    def actor_detail(self, key: str) -> ActorDetail | None:
        actor = next((a for a in self._actors() if a.key == key), None)
        if actor is None:
            return None
        stats = actor.stats()
        if isinstance(actor, ConcertDateActor):
            return ActorDetail(stats, seats=actor.view())
        if isinstance(actor, WalletActor):
            return ActorDetail(stats, balances=tuple(sorted(actor.state.balances.items())))
        if isinstance(actor, CheckoutActor):
            payments = tuple(p.view() for p in actor.state.payments.values())
            return ActorDetail(stats, payments=payments)
        if isinstance(actor, BaseRoomActor):
            return ActorDetail(stats, settings=actor.state.settings)
        return ActorDetail(stats)

    def journal_stats(self) -> JournalStats:
        return self.journal.report()

    def totals(self, stats: Sequence[ActorStats] | None = None) -> Totals:
        """Figures over every actor of this process; pass the `actor_stats()` already read to
        spare summarising every date again (with thousands on sale they are not free)."""
        seats = {"seats": 0, "available": 0, "held": 0, "checkout": 0, "sold": 0}
        for date in stats if stats is not None else self.actor_stats():
            if date.kind == "date":
                for name in seats:
                    value = date.state[name]
                    assert isinstance(value, int)
                    seats[name] += value
        payments = {STARTED: 0, COMPLETED: 0, FAILED: 0}
        revenue = 0
        for checkout in self.checkouts:
            summary = checkout.state.counts()
            for status, count in summary.items():
                payments[status] += count
            revenue += checkout.state.revenue
        rooms = [r.state for r in self._room_actors()]
        wallets = [w.state for w in self.wallets]
        return Totals(
            waiting=sum(len(r.waiting) for r in rooms),
            active=sum(len(r.active) for r in rooms),
            admitted=sum(r.admitted_total for r in rooms),
            completed=sum(r.completed_total for r in rooms),
            expired=sum(r.expired_total for r in rooms),
            charged=sum(w.charged_total for w in wallets),
            debited=sum(w.debited_total for w in wallets),
            balances=sum(sum(w.balances.values()) for w in wallets),
            payments_completed=payments[COMPLETED],
            payments_failed=payments[FAILED],
            payments_started=payments[STARTED],
            revenue=revenue,
            **seats,
        )

    async def cluster(self) -> ClusterView | None:
        return None  # one process: no cluster

    # -- the actors themselves (in this process: for tests, benchmarks and tools) ---------------

    @property
    def room(self) -> WaitingRoomActor:
        return _here(self._room, "waiting room")

    def room_actor(self, concert_id: str) -> RoomActor | None:
        return self._rooms.get(concert_id)

    @property
    def wallets(self) -> tuple[WalletActor, ...]:
        return tuple(w for w in self._wallets if w is not None)

    @property
    def checkouts(self) -> tuple[CheckoutActor, ...]:
        return tuple(c for c in self._checkouts if c is not None)

    def date_actor(self, concert_id: str, date: str) -> ConcertDateActor | None:
        return self._dates.get((concert_id, date))

    def date_actors(self) -> tuple[ConcertDateActor, ...]:
        return tuple(self._dates.values())

    def wallet_actor(self, user_id: str) -> WalletActor:
        return self._wallet_of(user_id)

    def checkout_actor(self, user_id: str) -> CheckoutActor:
        return self._checkout_of(user_id)

    def all_actors(self) -> tuple[Actor[Any], ...]:
        return tuple(self._actors())

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> None:
        """Call `listener(origin, events)` after each commit of any actor's events."""
        self._listeners.append(listener)
        for actor in self._actors():
            actor.listeners.append(listener)

    # -- life cycle ----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[EngineSystem]:
        """Recover every actor from the journal, start them, and stop them on exit."""
        async with anyio.create_task_group() as tg:
            await self._recover()
            self._task_group = tg
            for actor in self._actors():
                await tg.start(actor.run)
                self._actors_started.add(actor)
            await self._settle_after_recovery()
            self.ready = True
            try:
                yield self
            finally:
                self.ready = False
                with anyio.CancelScope(shield=True):
                    await self.stop()

    async def stop(self) -> None:
        """Finish the commands already queued, then end every actor (checkouts first)."""
        rooms: list[Actor[Any]] = list(self._room_actors())
        others: list[Actor[Any]] = [*rooms, *self._dates.values(), *self.wallets]
        checkouts: list[Actor[Any]] = list(self.checkouts)
        for group in (checkouts, others):
            for actor in group:
                actor.close()
            for actor in group:
                if self._task_group is not None:  # never started: nothing to wait for
                    await actor.wait_stopped()

    def _room_actors(self) -> list[BaseRoomActor[Any]]:
        site: list[BaseRoomActor[Any]] = [self._room] if self._room is not None else []
        return [*site, *self._rooms.values()]

    def _actors(self) -> list[Actor[Any]]:
        return [*self._room_actors(), *self._dates.values(), *self.wallets, *self.checkouts]

    async def _recover(self) -> None:
        actors = self._actors()
        # One shard of many reads only its own actors' histories.
        keys = None if self.placement.shards == 1 else [actor.key for actor in actors]
        histories = await self.journal.load(keys)
        # Replaying builds millions of long-lived objects; the cyclic collector would rescan
        # them over and over (it tripled replay time) while finding nothing to free.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for actor in actors:
                await actor.recover(histories.get(actor.key))
        finally:
            if collecting:
                gc.enable()

    async def _settle_after_recovery(self) -> None:
        if self._room is not None:
            await self.ask(OpenRoom())
        for concert_id, room in self._rooms.items():
            await room.ask(OpenRoom(concert_id))
        for checkout in self.checkouts:
            for payment in checkout.state.unfinished():
                await self.ask(Resolve(payment.user_id, payment.payment_id))
        for actor in self._dates.values():
            info = actor.info
            for pid, user in actor.state.payments_in_checkout().items():
                # A payment is durably started before its seats are locked, so its checkout
                # settles it; a lock whose checkout never recorded it (a journal of an older
                # release) cannot have taken money: cancel it.
                try:
                    known = await self.ask(PaymentStatusOf(user, pid))
                except EngineError as error:
                    log.warning("seat lock of %s left for later: %s", pid, error)
                    continue
                if known is None:
                    await actor.ask(Unlock(info.concert_id, info.date, pid))
            await actor.ask(ExpireDue(self.clock.now()))  # holds that lapsed while we were down

    def _poison(self, keys: set[str]) -> None:
        for actor in self._actors():
            if actor.key in keys:
                actor.poison()

    def _on_room_events(self, origin: Origin, events: Sequence[Event]) -> None:
        """A token whose active window ran out can no longer pay: free its holds for others
        now rather than when they lapse. Best effort: a hold not released here still lapses."""
        room = self._rooms.get(origin.concert_id) if origin.concert_id else self._room
        if room is None:
            return
        for item in events:
            if isinstance(item, ActiveExpired):
                for seq in item.seqs:
                    user = room.user_of(seq)
                    if user is None:
                        continue
                    self.release_local_holds(user)
                    if self._peers is not None and self._task_group is not None:
                        self._task_group.start_soon(self._peers.release_holds, user)


def _fields(on_sale: OnSale) -> dict[str, Any]:
    return {f.name: getattr(on_sale, f.name) for f in dataclasses.fields(on_sale)}


def _here(actor: A | None, what: str) -> A:
    """An actor this process serves (a read view of another shard's is a gateway's to make)."""
    if actor is None:
        raise ActorUnavailable(f"the {what} is not on this shard")
    return actor


__all__ = ["ConcertDateInfo", "EngineSystem"]
