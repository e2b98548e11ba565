"""`EngineSystem`: the engine in one process, behind its one face (engine/face.py).

It builds, recovers, runs and stops every actor, routes each command to the actor that takes
it (`ask`), and answers the read views straight from the actors' published state, so reads
never queue behind writes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from engine.actor import Actor, EventListener, ExpireDue
from engine.actors.checkout import CheckoutActor
from engine.actors.concert_date import ConcertDateActor
from engine.actors.waiting_room import WaitingRoomActor
from engine.actors.wallet import WalletActor, shard_of
from engine.catalog import CatalogStore, ConcertDateInfo, ConcertInfo
from engine.clock import Clock, SystemClock
from engine.commands import (
    Command,
    DateCommand,
    OpenRoom,
    Release,
    Resolve,
    Unlock,
)
from engine.config import EngineConfig
from engine.domain.checkout import COMPLETED, FAILED, STARTED
from engine.domain.seat_map import HELD
from engine.domain.waiting_room import ActiveExpired
from engine.errors import DATE_ON_SALE, NOT_FOUND, EngineError, Refused
from engine.events import Event
from engine.journal import Journal
from engine.views import (
    ActorDetail,
    ActorKind,
    ActorStats,
    DateView,
    JournalStats,
    Origin,
    PaymentView,
    QueuePosition,
    Reservation,
    SeatMapView,
    TokenView,
    Totals,
)

log = logging.getLogger(__name__)

R = TypeVar("R")


class EngineSystem:
    def __init__(
        self,
        journal: Journal,
        *,
        config: EngineConfig | None = None,
        clock: Clock | None = None,
        catalog: Iterable[ConcertInfo] = (),
        catalog_store: CatalogStore | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.clock = clock or SystemClock()
        self.journal = journal
        self._catalog_store = catalog_store
        self._concerts: dict[str, ConcertInfo] = {}
        self._dates: dict[tuple[str, str], ConcertDateActor] = {}  # by concert id and date
        self._room = WaitingRoomActor(self.config, journal=journal, clock=self.clock)
        self._wallets = [
            WalletActor(n, self.config, journal=journal, clock=self.clock)
            for n in range(self.config.wallet_shards)
        ]
        self._checkouts = [
            CheckoutActor(n, self.config, self, journal=journal, clock=self.clock)
            for n in range(self.config.checkout_shards)
        ]
        self._routes: dict[ActorKind, Callable[[Any], Actor[Any]]] = {
            "date": self._date_for,
            "wallet": lambda command: self._wallet_of(command.user_id),
            "checkout": lambda command: self._checkout_of(command.user_id),
            "waiting-room": lambda _: self._room,
        }
        self._listeners: list[EventListener] = []
        self._task_group: TaskGroup | None = None
        self.ready = False
        for concert in catalog:
            self._add_concert(concert)
        journal.on_failure(self._poison)
        self._room.listeners.append(self._on_room_events)

    # -- commands ------------------------------------------------------------------------------

    async def ask(self, command: Command[R]) -> R:
        """Run `command` on the actor that takes it; its answer once it is durable.

        Raises `Refused` (NOT_FOUND for a date that is not on sale, or the domain's refusal),
        `Overloaded`, `ActorUnavailable` or `JournalFailed` (engine/errors.py).
        """
        return await self._routes[command.target](command).ask(command)

    def _date_for(self, command: DateCommand[Any]) -> ConcertDateActor:
        where = command.where()
        actor = self._dates.get(where) if where is not None else None
        if actor is None:
            if isinstance(command, Release):
                raise Refused(NOT_FOUND, f"no reservation {command.reservation_id}")
            assert where is not None  # every other date command names its date
            raise Refused(NOT_FOUND, self._missing_date(*where))
        return actor

    def _missing_date(self, concert_id: str, date: str) -> str:
        if concert_id not in self._concerts:
            return f"no concert {concert_id}"
        return f"no date {date} for concert {concert_id}"

    def _wallet_of(self, user_id: str) -> WalletActor:
        return self._wallets[shard_of(user_id, len(self._wallets))]

    def _checkout_of(self, user_id: str) -> CheckoutActor:
        return self._checkouts[shard_of(user_id, len(self._checkouts))]

    async def add_concert(self, concert: ConcertInfo) -> ConcertInfo:
        """Put a concert (or more dates of one) on sale: durable in the catalog first, so a
        restart finds the dates. A date already on sale keeps its seats and price: changing
        them is refused (DATE_ON_SALE), as it would corrupt its seat map."""
        for index, info in enumerate(concert.dates):
            running = self._dates.get((info.concert_id, info.date))
            if running is not None and running.info != info:
                raise Refused(
                    DATE_ON_SALE,
                    f"date {info.date} is on sale with {running.info.seats} seats at "
                    f"{running.info.price}; it cannot be changed",
                    field=f"dates.{index}",
                )
        if self._catalog_store is not None:
            await self._catalog_store.add_concert(concert)
        known = self._concerts.get(concert.concert_id)
        if known is not None:
            merged = {d.key: d for d in (*known.dates, *concert.dates)}
            concert = ConcertInfo(
                concert.concert_id, concert.title, concert.venue, tuple(merged.values())
            )
        added = self._add_concert(concert)
        if self._task_group is not None:
            histories = await self.journal.load([a.key for a in added])
            for actor in added:
                actor.restore(histories.get(actor.key))
                await self._task_group.start(actor.run)
        return self._concerts[concert.concert_id]

    def _add_concert(self, concert: ConcertInfo) -> list[ConcertDateActor]:
        self._concerts[concert.concert_id] = concert
        added = []
        for info in concert.dates:
            if (info.concert_id, info.date) in self._dates:
                continue
            actor = ConcertDateActor(info, self.config, journal=self.journal, clock=self.clock)
            actor.listeners.extend(self._listeners)
            self._dates[info.concert_id, info.date] = actor
            added.append(actor)
        return added

    # -- read views ----------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def token(self, token: str) -> TokenView | None:
        return self._room.lookup(token)

    def position(self, seq: int) -> QueuePosition | None:
        return self._room.position(seq)

    def concerts(self) -> tuple[ConcertInfo, ...]:
        return tuple(sorted(self._concerts.values(), key=lambda c: c.concert_id))

    def concert(self, concert_id: str) -> ConcertInfo | None:
        return self._concerts.get(concert_id)

    def has_date(self, concert_id: str, date: str) -> bool:
        return (concert_id, date) in self._dates

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
        if isinstance(actor, WaitingRoomActor):
            return ActorDetail(stats, settings=actor.state.settings)
        return ActorDetail(stats)

    def journal_stats(self) -> JournalStats:
        return self.journal.report()

    def totals(self, stats: Sequence[ActorStats] | None = None) -> Totals:
        """Figures over every actor; pass the `actor_stats()` already read to spare summarising
        every date again (with thousands on sale they are not free)."""
        room = self._room.state
        seats = {"seats": 0, "available": 0, "held": 0, "checkout": 0, "sold": 0}
        for date in stats if stats is not None else self.actor_stats():
            if date.kind == "date":
                for name in seats:
                    value = date.state[name]
                    assert isinstance(value, int)
                    seats[name] += value
        payments = {STARTED: 0, COMPLETED: 0, FAILED: 0}
        revenue = 0
        for checkout in self._checkouts:
            summary = checkout.state.counts()
            for status, count in summary.items():
                payments[status] += count
            revenue += checkout.state.revenue
        return Totals(
            waiting=len(room.waiting),
            active=len(room.active),
            admitted=room.admitted_total,
            completed=room.completed_total,
            expired=room.expired_total,
            charged=sum(w.state.charged_total for w in self._wallets),
            debited=sum(w.state.debited_total for w in self._wallets),
            balances=sum(sum(w.state.balances.values()) for w in self._wallets),
            payments_completed=payments[COMPLETED],
            payments_failed=payments[FAILED],
            payments_started=payments[STARTED],
            revenue=revenue,
            **seats,
        )

    # -- the actors themselves (in this process: for tests, benchmarks and tools) ---------------

    @property
    def room(self) -> WaitingRoomActor:
        return self._room

    @property
    def wallets(self) -> tuple[WalletActor, ...]:
        return tuple(self._wallets)

    @property
    def checkouts(self) -> tuple[CheckoutActor, ...]:
        return tuple(self._checkouts)

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
        others: list[Actor[Any]] = [self._room, *self._dates.values(), *self._wallets]
        checkouts: list[Actor[Any]] = list(self._checkouts)
        for group in (checkouts, others):
            for actor in group:
                actor.close()
            for actor in group:
                if self._task_group is not None:  # never started: nothing to wait for
                    await actor.wait_stopped()

    def _actors(self) -> list[Actor[Any]]:
        return [self._room, *self._dates.values(), *self._wallets, *self._checkouts]

    async def _recover(self) -> None:
        histories = await self.journal.load()
        # Replaying builds millions of long-lived objects; the cyclic collector would rescan
        # them over and over (it tripled replay time) while finding nothing to free.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for actor in self._actors():
                actor.restore(histories.get(actor.key))
        finally:
            if collecting:
                gc.enable()

    async def _settle_after_recovery(self) -> None:
        await self.ask(OpenRoom())
        for checkout in self._checkouts:
            for payment in checkout.state.unfinished():
                await self.ask(Resolve(payment.user_id, payment.payment_id))
        for actor in self._dates.values():
            # A lock whose checkout never got journaled cannot have taken money: cancel it.
            for pid in actor.state.payments_in_checkout():
                await actor.ask(Unlock(actor.info.concert_id, actor.info.date, pid))
            await actor.ask(ExpireDue(self.clock.now()))  # holds that lapsed while we were down

    def _poison(self, keys: set[str]) -> None:
        for actor in self._actors():
            if actor.key in keys:
                actor.poison()

    def _on_room_events(self, _origin: Origin, events: Sequence[Event]) -> None:
        """A token whose active window ran out can no longer pay: free its holds for others
        now rather than when they lapse. Best effort: a hold not released here still lapses."""
        for item in events:
            if isinstance(item, ActiveExpired):
                for seq in item.seqs:
                    user = self._room.user_of(seq)
                    if user is None:
                        continue
                    for held in self.reservations(user):
                        if held.status == HELD:
                            release = Release(user, held.reservation_id)
                            with contextlib.suppress(EngineError):
                                self._date_for(release).tell(release)


__all__ = ["ConcertDateInfo", "EngineSystem"]
