"""A shard host: one Ray actor per shard, running the engine's actors of that shard.

The host opens the shared journal on PostgreSQL under its shard's lease (taking it over: the
epoch fences whoever had it, persistence/lease.py), recovers its actors (snapshots, then
events) and only then serves. Commands arrive in batches (cluster/client.py) and
each is run by the engine exactly as in one process; the answers go back once durable. Each
group commit's rows are published on the bus for the gateways. Commands for another shard's
actors (a checkout's steps on a date elsewhere) go to that shard's host. Commands arrive on
the host's command channel (cluster/channel.py), found through `endpoint()`.

Ray restarts a host that dies (the launcher creates it with unlimited restarts); the new
instance recovers before it answers. A host whose lease was taken over (a paused process
that woke up after its replacement started) commits nothing, so every command it still gets
fails, and no client ever gets an answer from it; once it notices, it closes its command
channel and refuses every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from cluster.bus import Publisher, channels
from cluster.channel import ChannelServer, Endpoint, new_secret
from cluster.client import RayPeers, ShardClient
from cluster.wire import Answer, failure_of
from engine.actor import Reply
from engine.commands import Command
from engine.config import EngineConfig
from engine.heap import freeze_long_lived, tune_collector
from engine.placement import Placement
from engine.system import EngineSystem
from engine.views import ActorDetail, ActorStats, JournalStats
from persistence import SqlJournal, open_store
from persistence.lease import shard_lease

log = logging.getLogger(__name__)


# A host sees its shard's share of the load, so its commit groups form smaller than one
# process's: after an idle spell its journal waits this long for company. Measured on the
# spread load (loadtests/bench_cluster.py): 8 % less CPU per hold, throughput unchanged.
JOURNAL_LINGER = 0.001
FENCE_CHECK_EVERY = 1.0  # seconds between two looks at whether the lease was taken over


def node_address() -> str:
    """The address other nodes reach this one at (Ray's own idea of it)."""
    import ray.util

    address: Any = ray.util.get_node_ip_address  # untyped in Ray
    return str(address())


async def _answer(system: EngineSystem, command: Command[Any]) -> Answer:
    try:
        return True, await system.ask(command)
    except Exception as error:
        return False, failure_of(error)


def node_id() -> str:
    """This machine's id in the Ray cluster."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


def socket_path(shard: int) -> str:
    """A fresh path for this host's Unix socket."""
    return os.path.join(tempfile.gettempdir(), f"concert-queue-{shard}-{os.getpid()}.sock")


def host_name(shard: int) -> str:
    """The Ray actor name of a shard's host."""
    return f"shard-{shard}"


@dataclass(frozen=True, slots=True)
class HostInfo:
    """What `/admin/cluster` shows of a host."""

    shard: int
    node: str
    pid: int
    epoch: int
    started_at: float
    recovery_seconds: float
    actors: int
    healthy: bool
    fenced: bool
    published: int


@dataclass(frozen=True, slots=True)
class HostFigures:
    info: HostInfo
    journal: JournalStats
    actors: tuple[ActorStats, ...] | None  # None: not asked for


class ShardHost:
    """The body of the Ray actor `shard-<n>` (made remote by cluster/launch.py)."""

    def __init__(
        self,
        shard: int,
        shards: int,
        database_url: str,
        redis_url: str,
        config: EngineConfig,
        namespace: str,
    ) -> None:
        self.shard = shard
        self.placement = Placement(shards, shard)
        self.database_url = database_url
        self.redis_url = redis_url
        self.config = config
        self.namespace = namespace
        self._system: EngineSystem | None = None
        self._ready: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._info: HostInfo | None = None
        self._publisher: Publisher | None = None
        self._endpoint: Endpoint | None = None
        self._fenced = False

    # -- life --------------------------------------------------------------------------------

    async def start(self) -> HostInfo:
        """Recover (once; every call after the first waits for the same recovery)."""
        if self._ready is None:
            self._ready = asyncio.Event()
            self._stop = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._serve())
        await self._ready.wait()
        if self._failed is not None:
            raise RuntimeError(f"shard {self.shard} could not start: {self._failed}")
        assert self._info is not None
        return self._info

    async def stop(self) -> None:
        """Finish what is queued, flush the journal, give the lease up."""
        if self._stop is not None and self._task is not None:
            self._stop.set()
            await self._task

    async def _serve(self) -> None:
        assert self._ready is not None and self._stop is not None
        started = time.time()
        tune_collector()
        try:
            async with open_store(
                self.database_url,
                seed_demo=False,
                lease=shard_lease(self.shard),
                lease_mode="takeover",
                linger=JOURNAL_LINGER,
            ) as store:
                peers = RayPeers(await self._peers(), self.shard)
                system = EngineSystem(
                    store.journal,
                    config=self.config,
                    catalog=await store.catalog(),
                    placement=self.placement,
                    peers=peers,
                )
                events, _ = channels(self.database_url)
                publisher = self._publisher = Publisher(self.redis_url, events)
                store.journal.on_committed(publisher.publish)
                async with system.running():
                    lease = store.journal.lease
                    self._system = system
                    channel = ChannelServer(new_secret(), self.ask_many)
                    address, node = node_address(), node_id()
                    path = socket_path(self.shard)
                    self._endpoint = Endpoint(
                        address,
                        await channel.start(address, path),
                        channel.secret,
                        lease.epoch if lease is not None else 0,
                        node,
                        path,
                    )
                    self._info = HostInfo(
                        shard=self.shard,
                        node=os.uname().nodename,
                        pid=os.getpid(),
                        epoch=lease.epoch if lease is not None else 0,
                        started_at=started,
                        recovery_seconds=round(time.time() - started, 3),
                        actors=len(system.all_actors()),
                        healthy=True,
                        fenced=False,
                        published=0,
                    )
                    freeze_long_lived()
                    log.info("shard %d ready in %.2f s", self.shard, time.time() - started)
                    self._ready.set()
                    loop = asyncio.get_running_loop()
                    publishing = loop.create_task(publisher.run())
                    watching = loop.create_task(self._stop_once_fenced(store.journal))
                    try:
                        await self._stop.wait()
                    finally:
                        await channel.close()
                        for task in (watching, publishing):
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
                        await publisher.close()
        except BaseException as error:
            log.exception("shard %d failed", self.shard)
            self._failed = error
            self._ready.set()
            raise

    async def _stop_once_fenced(self, journal: SqlJournal) -> None:
        """Another host took this shard's lease over: close the command channel (its callers
        find the shard again through Ray) and refuse every call from now on."""
        assert self._stop is not None
        while not journal.fenced:
            await asyncio.sleep(FENCE_CHECK_EVERY)
        log.critical("shard %d: %s; this host serves nothing more", self.shard, journal.last_error)
        self._fenced = True
        self._stop.set()

    async def _peers(self) -> dict[int, ShardClient]:
        import ray

        clients = {}
        for shard in range(self.placement.shards):
            if shard == self.shard:
                continue
            handle = ray.get_actor(host_name(shard), namespace=self.namespace)
            clients[shard] = ShardClient(shard, handle, node_id())
        return clients

    # -- the engine's commands ------------------------------------------------------------------

    async def endpoint(self) -> Endpoint:
        """Where this host takes commands (cluster/channel.py), once it has recovered."""
        await self._system_ready()
        assert self._endpoint is not None
        return self._endpoint

    async def ask_many(self, commands: list[Command[Any]]) -> list[Answer]:
        """Run every command (concurrently, each on its actor); their answers, in order.

        Each is begun at once and its reply awaited in turn: one task for the batch rather
        than one per command (a hold's turn is shorter than a task's creation)."""
        system = await self._system_ready()
        replies: list[Reply[Any] | Answer | asyncio.Task[Answer]] = []
        for command in commands:
            try:
                begun = system.begin(command)
            except Exception as error:
                replies.append((False, failure_of(error)))
                continue
            if begun is None:  # another shard's actor: rare (a stale placement), asked there
                replies.append(asyncio.get_running_loop().create_task(_answer(system, command)))
            else:
                replies.append(begun)
        answers: list[Answer] = []
        for reply in replies:
            if isinstance(reply, tuple):
                answers.append(reply)
            elif isinstance(reply, asyncio.Task):
                answers.append(await reply)
            else:
                await reply.done.wait()
                try:
                    answers.append((True, reply.outcome()))
                except Exception as error:
                    answers.append((False, failure_of(error)))
        return answers

    async def release_holds(self, user_id: str) -> None:
        (await self._system_ready()).release_local_holds(user_id)

    async def add_concert(self, concert: Any) -> None:
        """Start the actors of this shard's dates of a concert already durable in the
        catalog (a gateway wrote it)."""
        await (await self._system_ready()).add_concert(concert)
        freeze_long_lived()

    async def _system_ready(self) -> EngineSystem:
        await self.start()
        if self._fenced:
            raise RuntimeError(f"shard {self.shard} was taken over by another host")
        assert self._system is not None
        return self._system

    # -- what the gateways and the admin read --------------------------------------------------

    async def heads(self) -> dict[str, int]:
        """Every actor's latest sequence number (for the gateways' heads check)."""
        system = await self._system_ready()
        return {actor.key: actor.seq for actor in system.all_actors()}

    async def figures(self, actors: bool) -> HostFigures:
        """The host's state and its journal's health; with every actor's stats if `actors`
        (thousands of them: only while someone looks)."""
        system = await self._system_ready()
        assert self._info is not None
        journal = system.journal_stats()
        published = self._publisher.published if self._publisher is not None else 0
        info = dataclasses.replace(
            self._info,
            healthy=journal.healthy,
            fenced=journal.last_error is not None and journal.last_error.startswith("fenced"),
            published=published,
        )
        return HostFigures(info, journal, system.actor_stats() if actors else None)

    async def actor_detail(self, key: str) -> ActorDetail | None:
        return (await self._system_ready()).actor_detail(key)

    def pid(self) -> int:
        return os.getpid()
