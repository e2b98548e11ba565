"""The engine's one face: builds, recovers, runs, stops and looks up every actor.

The web layer talks to `EngineSystem` only. Commands go through actor mailboxes; reads (the
token gate, seat maps, balances, a user's reservations) read the actors' published state
directly and never queue behind writes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from engine.actor import Actor, ActorStats, EventListener, ExpireDue
from engine.actors.checkout import CheckoutActor, Pay, PaymentResult, Resolve
from engine.actors.concert_date import ConcertDateActor, Hold, Release, Unlock, live_holds
from engine.actors.waiting_room import Complete, Configure, Join, Open, WaitingRoomActor
from engine.actors.wallet import Charge, WalletActor, shard_of
from engine.catalog import ConcertDateInfo, ConcertInfo, date_key
from engine.clock import Clock, SystemClock
from engine.config import EngineConfig
from engine.domain.reservation import Reservation
from engine.domain.seat_map import parse_reservation_id
from engine.domain.waiting_room import PROCESSING, ActiveExpired, RoomSettings, TokenView
from engine.errors import NOT_FOUND, ActorUnavailable, EngineError, Refused
from engine.events import Event
from engine.journal import Journal

log = logging.getLogger(__name__)


class EngineSystem:
    def __init__(
        self,
        journal: Journal,
        *,
        config: EngineConfig | None = None,
        clock: Clock | None = None,
        catalog: Iterable[ConcertInfo] = (),
    ) -> None:
        self.config = config or EngineConfig()
        self.clock = clock or SystemClock()
        self.journal = journal
        self.concerts: dict[str, ConcertInfo] = {}
        self.dates: dict[str, ConcertDateActor] = {}
        self._waiting_room = WaitingRoomActor(self.config, journal=journal, clock=self.clock)
        self.wallets = [
            WalletActor(n, self.config, journal=journal, clock=self.clock)
            for n in range(self.config.wallet_shards)
        ]
        self.checkouts = [
            CheckoutActor(n, self.config, self, journal=journal, clock=self.clock)
            for n in range(self.config.checkout_shards)
        ]
        self._listeners: list[EventListener] = []
        self._task_group: TaskGroup | None = None
        self.ready = False
        for concert in catalog:
            self._add_concert(concert)
        journal.on_failure(self._poison)
        self._waiting_room.listeners.append(self._on_room_events)

    # -- lookups (the checkout's Directory) ----------------------------------------------------

    @property
    def waiting_room(self) -> WaitingRoomActor:
        return self._waiting_room

    def date_actor(self, concert_id: str, date: str) -> ConcertDateActor | None:
        return self.dates.get(date_key(concert_id, date))

    def wallet_actor(self, user_id: str) -> WalletActor:
        return self.wallets[shard_of(user_id, len(self.wallets))]

    def date_actors(self) -> list[ConcertDateActor]:
        return list(self.dates.values())

    def checkout_actor(self, user_id: str) -> CheckoutActor:
        return self.checkouts[shard_of(user_id, len(self.checkouts))]

    def actors(self) -> list[Actor[Any]]:
        return [self._waiting_room, *self.dates.values(), *self.wallets, *self.checkouts]

    def actor(self, key: str) -> Actor[Any] | None:
        return next((a for a in self.actors() if a.key == key), None)

    # -- life cycle ----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[EngineSystem]:
        """Recover every actor from the journal, start them, and stop them on exit."""
        async with anyio.create_task_group() as tg:
            await self._recover()
            self._task_group = tg
            for actor in self.actors():
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
        others: list[Actor[Any]] = [self._waiting_room, *self.dates.values(), *self.wallets]
        checkouts: list[Actor[Any]] = list(self.checkouts)
        for group in (checkouts, others):
            for actor in group:
                actor.close()
            for actor in group:
                if self._task_group is not None:  # never started: nothing to wait for
                    await actor.wait_stopped()

    async def _recover(self) -> None:
        histories = await self.journal.load()
        # Replaying builds millions of long-lived objects; the cyclic collector would rescan
        # them over and over (it tripled replay time) while finding nothing to free.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for actor in self.actors():
                await actor.recover(histories.get(actor.key))
        finally:
            if collecting:
                gc.enable()

    async def _settle_after_recovery(self) -> None:
        await self._waiting_room.ask(Open())
        for checkout in self.checkouts:
            for payment in checkout.state.unfinished():
                await checkout.ask(Resolve(payment.payment_id))
        for actor in self.dates.values():
            # A lock whose checkout never got journaled cannot have taken money: cancel it.
            for pid in actor.state.payments_in_checkout():
                await actor.ask(Unlock(pid))
            await actor.ask(ExpireDue(self.clock.now()))  # holds that lapsed while we were down

    def _poison(self, keys: set[str]) -> None:
        for actor in self.actors():
            if actor.key in keys:
                actor.poison()

    def _on_room_events(self, _key: str, events: Sequence[Event]) -> None:
        """A token whose active window ran out can no longer pay: free its holds for others
        now rather than when they lapse. Best effort: a hold not released here still lapses."""
        for item in events:
            if isinstance(item, ActiveExpired):
                for seq in item.seqs:
                    user = self._waiting_room.state.user_of[seq]
                    for actor, release in list(live_holds(self.dates.values(), user)):
                        with contextlib.suppress(EngineError):
                            actor.tell(release)

    # -- catalog -------------------------------------------------------------------------------

    def _add_concert(self, concert: ConcertInfo) -> list[ConcertDateActor]:
        self.concerts[concert.concert_id] = concert
        added = []
        for info in concert.dates:
            if info.key in self.dates:
                continue
            actor = ConcertDateActor(info, self.config, journal=self.journal, clock=self.clock)
            actor.listeners.extend(self._listeners)
            self.dates[info.key] = actor
            added.append(actor)
        return added

    async def add_concert(self, concert: ConcertInfo) -> None:
        """Put a concert on sale while running (its catalog rows must already be durable)."""
        known = self.concerts.get(concert.concert_id)
        if known is not None:
            merged = {d.key: d for d in (*known.dates, *concert.dates)}
            concert = ConcertInfo(
                concert.concert_id, concert.title, concert.venue, tuple(merged.values())
            )
        added = self._add_concert(concert)
        if self._task_group is not None:
            histories = await self.journal.load([a.key for a in added])
            for actor in added:
                await actor.recover(histories.get(actor.key))
                await self._task_group.start(actor.run)

    def date_infos(self, concert_id: str) -> list[ConcertDateInfo]:
        concert = self.concerts.get(concert_id)
        return sorted(concert.dates, key=lambda d: d.date) if concert else []

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> None:
        """Call `listener(actor_key, events)` after each commit of any actor's events."""
        self._listeners.append(listener)
        for actor in self.actors():
            actor.listeners.append(listener)

    # -- commands ------------------------------------------------------------------------------

    async def join(self, user_id: str) -> TokenView:
        view: TokenView = await self._waiting_room.ask(Join(user_id))
        return view

    def lookup_token(self, token: str) -> TokenView | None:
        return self._waiting_room.lookup(token)

    async def configure_queue(self, **changes: Any) -> RoomSettings:
        settings: RoomSettings = await self._waiting_room.ask(
            Configure(tuple(sorted(changes.items())))
        )
        return settings

    async def complete_token(self, user_id: str) -> None:
        await self._waiting_room.ask(Complete(user_id))

    async def hold(self, user_id: str, concert_id: str, date: str, seat: int) -> Reservation:
        actor = self._date_or_404(concert_id, date)
        reservation: Reservation = await actor.ask(Hold(user_id, seat))
        return reservation

    async def release(self, user_id: str, reservation_id: str) -> None:
        parsed = parse_reservation_id(reservation_id)
        if parsed is None:
            raise Refused(NOT_FOUND, f"no reservation {reservation_id}")
        await self._date_or_404(parsed[0], parsed[1]).ask(Release(user_id, reservation_id))

    async def charge(
        self, user_id: str, amount: int, key: str | None = None, token_status: str = PROCESSING
    ) -> int:
        balance: int = await self.wallet_actor(user_id).ask(
            Charge(user_id, amount, key, token_status)
        )
        return balance

    def balance(self, user_id: str) -> int:
        return self.wallet_actor(user_id).state.balance(user_id)

    async def pay(
        self,
        user_id: str,
        reservation_ids: Sequence[str],
        key: str | None = None,
        token_status: str = PROCESSING,
    ) -> PaymentResult:
        result: PaymentResult = await self.checkout_actor(user_id).ask(
            Pay(user_id, tuple(reservation_ids), key, token_status)
        )
        return result

    def reservations_of(self, user_id: str) -> list[Reservation]:
        found: list[Reservation] = []
        for actor in self.dates.values():
            found += actor.reservations_of(user_id)
        return found

    def _date_or_404(self, concert_id: str, date: str) -> ConcertDateActor:
        actor = self.date_actor(concert_id, date)
        if actor is None:
            raise Refused(NOT_FOUND, f"no date {date} for concert {concert_id}")
        return actor

    # -- observation ---------------------------------------------------------------------------

    def stats(self) -> list[ActorStats]:
        return [actor.stats() for actor in self.actors()]


__all__ = ["ActorUnavailable", "EngineSystem"]
