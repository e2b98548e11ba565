"""The engine's face in a gateway (`engine.face.Engine`): commands to the shard hosts, reads
from the gateway's replica.

- `ask(command)`: to the host of the shard that owns the command's actor, batched per shard
  (cluster/client.py); the answer is that host's durable one;
- read views (the token gate, dates, seats, balances, reservations, payments): from the
  replica (cluster/replica.py), a few milliseconds behind the shards, no remote call;
- events: the replica's listeners, called as the shards' events arrive;
- admin figures (every actor's stats with its host, the journals' health): each host's, as
  last fetched: its state and journal every `FIGURES_EVERY` seconds; every actor's stats
  (thousands) too while an admin read them in the last `ACTORS_WANTED_FOR` seconds, and at
  once at the first read after that (which shows them as last fetched);
- `add_concert`: durable in the catalog, then on every host and every gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from sqlalchemy import Engine as Database

from cluster.bus import GatewayRegistry, Publisher
from cluster.client import ShardClient
from cluster.host import HostFigures, HostInfo, node_id
from cluster.replica import HEADS_EVERY, Replica
from engine.actor import EventListener
from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.commands import Command
from engine.errors import VALIDATION_ERROR, ActorUnavailable, Refused
from engine.placement import Placement
from engine.views import (
    ActorDetail,
    ActorStats,
    ClusterView,
    DateView,
    JournalStats,
    OnSale,
    PaymentView,
    QueuePosition,
    Reservation,
    RoomFigures,
    RoomStatusView,
    SeatMapView,
    ShardView,
    TokenView,
    Totals,
)
from persistence.catalog import upsert_concert
from persistence.rows import EncodedRow

log = logging.getLogger(__name__)

R = TypeVar("R")

FIGURES_EVERY = 2.0  # seconds between two fetches of the hosts' figures
ACTORS_WANTED_FOR = 30.0  # seconds the actors' stats are fetched after an admin read them


class ClusterEngine:
    def __init__(
        self,
        database: Database,
        replica: Replica,
        hosts: dict[int, Any],
        publisher: Publisher,
        catalog_channel: str,
        registry: GatewayRegistry,
    ) -> None:
        self.database = database
        self.replica = replica
        self.system = replica.system
        self.room_concerts = self.system.room_concerts
        self.placement = Placement(len(hosts))
        self.hosts = hosts
        node = node_id()
        self.clients = {shard: ShardClient(shard, h, node) for shard, h in hosts.items()}
        self.publisher = publisher
        self.catalog_channel = catalog_channel
        self.registry = registry
        self.ready = False
        self._epochs: dict[int, set[int]] = {}  # every epoch seen of each shard: its restarts
        self.figures: dict[int, HostFigures] = {}
        self.actors: dict[int, tuple[ActorStats, ...]] = {}
        self._actors_wanted = time.monotonic()  # from the start: the dashboard is opened early
        self._wake_figures = asyncio.Event()
        self.unreachable: dict[int, str] = {}
        self._loaded = False
        self._early: list[EncodedRow] = []  # rows heard while the replica was loading

    # -- commands ------------------------------------------------------------------------------

    async def ask(self, command: Command[R]) -> R:
        shard = self.placement.shard_of(self.system.key_of(command))
        answer = await self.clients[shard].ask(command)
        if isinstance(answer, TokenView):
            # A buyer uses a new token at once: this gateway's replica knows it before the
            # answer leaves (the other gateways within milliseconds, see `token`).
            await self.replica.until_token(answer.seq, answer.concert_id)
        return answer

    async def add_concert(self, concert: ConcertInfo) -> ConcertInfo:
        known = {(d.concert_id, d.date): d for c in self.system.concerts() for d in c.dates}
        for index, info in enumerate(concert.dates):
            held = known.get((info.concert_id, info.date))
            if held is not None and held != info:
                raise Refused(
                    VALIDATION_ERROR,
                    f"date {info.date} is on sale with {held.seats} seats at {held.price}; "
                    "it cannot be changed",
                    field=f"dates.{index}",
                )
        await anyio.to_thread.run_sync(upsert_concert, self.database, concert)
        merged = self._merged(concert)
        await self._register(merged)
        await asyncio.gather(*(h.add_concert.remote(merged) for h in self.hosts.values()))
        await self.publisher.publish_raw(self.catalog_channel, orjson.dumps(merged))
        return merged

    def _merged(self, concert: ConcertInfo) -> ConcertInfo:
        known = self.system.concert(concert.concert_id)
        if known is None:
            return concert
        dates = {d.key: d for d in (*known.dates, *concert.dates)}
        return ConcertInfo(concert.concert_id, concert.title, concert.venue, tuple(dates.values()))

    async def _register(self, concert: ConcertInfo) -> None:
        await self.replica.reload(self.replica.add_concert(concert))

    def on_catalog(self, payload: bytes) -> None:
        """Another gateway put a concert on sale."""
        raw = orjson.loads(payload)
        concert = ConcertInfo(
            raw["concert_id"],
            raw["title"],
            raw["venue"],
            tuple(ConcertDateInfo(**d) for d in raw["dates"]),
            OnSale(**raw["on_sale"]) if raw.get("on_sale") else None,
        )
        asyncio.get_running_loop().create_task(self._register(concert))

    # -- the shards' events ----------------------------------------------------------------

    def on_rows(self, rows: list[EncodedRow]) -> None:
        if not self._loaded:
            self._early += rows
            return
        behind = self.replica.on_rows(rows)
        if behind:
            asyncio.get_running_loop().create_task(self.replica.reload(behind))

    async def load(self) -> None:
        """Restore the replica from the journal, then apply what was heard meanwhile."""
        await self.replica.load()
        self._loaded = True
        early, self._early = self._early, []
        self.on_rows(early)

    async def watch_heads(self) -> None:
        """Reload what the bus failed to bring (until cancelled)."""
        while True:
            await asyncio.sleep(HEADS_EVERY)
            heads: dict[str, int] = {}
            for shard, handle in self.hosts.items():
                try:
                    heads |= await handle.heads.remote()
                except Exception as error:
                    log.debug("heads of shard %d: %s", shard, error)
            behind = self.replica.behind(heads)
            if behind:
                log.warning("replica behind the shards on %d actors: reloading", len(behind))
                await self.replica.reload(behind)

    async def watch_figures(self) -> None:
        """Fetch every host's figures (until cancelled)."""
        while True:
            actors = time.monotonic() - self._actors_wanted < ACTORS_WANTED_FOR
            for shard, handle in self.hosts.items():
                try:
                    figures: HostFigures = await handle.figures.remote(actors)
                except Exception as error:
                    self.unreachable[shard] = f"{type(error).__name__}: {error}"[:300]
                    continue
                self.figures[shard] = figures
                if figures.actors is not None:
                    self.actors[shard] = figures.actors
                self.unreachable.pop(shard, None)
            self._wake_figures.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIGURES_EVERY):
                    await self._wake_figures.wait()

    def _want_actors(self) -> None:
        now = time.monotonic()
        if now - self._actors_wanted >= ACTORS_WANTED_FOR:
            self._wake_figures.set()  # fetched again at once, not at the next round
        self._actors_wanted = now

    # -- read views ------------------------------------------------------------------------

    def now(self) -> float:
        return self.system.now()

    def token(self, token: str) -> TokenView | None:
        view = self.system.token(token)
        if view is None and self.system.issued_later(token):
            # Genuine, issued by the room a moment ago, not yet heard of here: retry shortly.
            raise ActorUnavailable("this token was issued a moment ago; retry shortly")
        return view

    def position(self, seq: int, concert_id: str | None = None) -> QueuePosition | None:
        return self.system.position(seq, concert_id)

    def room_status(self, concert_id: str | None) -> RoomStatusView | None:
        return self.system.room_status(concert_id)

    def rooms(self) -> tuple[RoomFigures, ...]:
        return self.system.rooms()

    def concerts(self) -> tuple[ConcertInfo, ...]:
        return self.system.concerts()

    def concert(self, concert_id: str) -> ConcertInfo | None:
        return self.system.concert(concert_id)

    def dates(self, concert_id: str) -> tuple[DateView, ...]:
        return self.system.dates(concert_id)

    def has_date(self, concert_id: str, date: str) -> bool:
        return self.system.has_date(concert_id, date)

    def seat_map(self, concert_id: str, date: str) -> SeatMapView | None:
        return self.system.seat_map(concert_id, date)

    def balance(self, user_id: str) -> int:
        return self.system.balance(user_id)

    def reservations(self, user_id: str) -> tuple[Reservation, ...]:
        return self.system.reservations(user_id)

    def payment(self, user_id: str, key: str) -> PaymentView | None:
        return self.system.payment(user_id, key)

    # -- admin -----------------------------------------------------------------------------

    def actor_stats(self) -> tuple[ActorStats, ...]:
        self._want_actors()
        stats: list[ActorStats] = []
        for shard, actors in sorted(self.actors.items()):
            host = _host_label(self.figures[shard].info)
            stats += [dataclasses.replace(s, host=host) for s in actors]
        return tuple(stats)

    def actor_detail(self, key: str) -> ActorDetail | None:
        detail = self.system.actor_detail(key)
        if detail is None:
            return None
        live = next((s for s in self.actor_stats() if s.key == key), None)
        return dataclasses.replace(detail, stats=live) if live is not None else detail

    def journal_stats(self) -> JournalStats:
        journals = [f.journal for f in self.figures.values()]
        errors = [j.last_error for j in journals if j.last_error]
        return JournalStats(
            healthy=all(j.healthy for j in journals),
            last_error=errors[0] if errors else None,
            commits=sum(j.commits for j in journals),
            events=sum(j.events for j in journals),
            snapshots=sum(j.snapshots for j in journals),
            failures=sum(j.failures for j in journals),
        )

    def totals(self, stats: Sequence[ActorStats] | None = None) -> Totals:
        return self.system.totals(stats if stats is not None else self.actor_stats())

    def subscribe(self, listener: EventListener) -> None:
        self.replica.listeners.append(listener)

    async def cluster(self) -> ClusterView:
        shards = []
        for shard in sorted(self.hosts):
            figures = self.figures.get(shard)
            info = figures.info if figures is not None else None
            client = self.clients[shard]
            if info is not None:
                self._epochs.setdefault(shard, set()).add(info.epoch)
            shards.append(
                ShardView(
                    shard=shard,
                    host=_host_label(info) if info is not None else None,
                    epoch=info.epoch if info is not None else 0,
                    restarts=max(0, len(self._epochs.get(shard, ())) - 1),
                    started_at=info.started_at if info is not None else None,
                    recovery_seconds=info.recovery_seconds if info is not None else None,
                    actors=info.actors if info is not None else 0,
                    healthy=info.healthy if info is not None else False,
                    fenced=info.fenced if info is not None else False,
                    reachable=shard not in self.unreachable,
                    error=self.unreachable.get(shard),
                    calls=client.calls,
                    commands=client.commands,
                )
            )
        return ClusterView(tuple(shards), tuple(await self.registry.gateways()))


def _host_label(info: HostInfo) -> str:
    return f"shard-{info.shard}@{info.node}:{info.pid}"
