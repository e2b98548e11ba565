"""Calls to the shard hosts, batched: one call carries every command queued for a shard.

A call costs more than a hold (a round trip, and CPU on both sides: cluster/channel.py), so a
gateway (or a host reaching another shard) does not make one per command: commands for a
shard queue while a call to it is in flight and leave together in the next one, as group
commit does for the journal. Under load a batch holds as many commands as arrived during one
round trip; alone, a command leaves at once.

A host that cannot be reached (dead, restarting) answers every command of the call with
`ActorUnavailable` (503, retry): whether a command it had received was done is then unknown,
which the idempotency of charges and payments makes safe to retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from cluster.channel import Channel, Endpoint
from cluster.wire import Answer, Failure, unwrap
from engine.commands import Command

log = logging.getLogger(__name__)

R = TypeVar("R")

MAX_BATCH = 512  # commands per call at most
IN_FLIGHT = 2  # calls to one shard at once: the next batch forms while one is on its way


class ShardClient:
    """The way to one shard host (a Ray actor handle of cluster/host.py's `ShardHost`):
    commands on its channel, batched."""

    def __init__(self, shard: int, handle: Any, node: str = "") -> None:
        self.shard = shard
        self.handle = handle
        self.channel = Channel(shard, self._endpoint, node)
        self._queue: list[tuple[Command[Any], asyncio.Future[Answer]]] = []
        self._in_flight = 0
        self.calls = 0
        self.commands = 0

    async def ask(self, command: Command[R]) -> R:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        if self._in_flight < IN_FLIGHT:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._send())
        return cast(R, unwrap(await future))

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self.calls += 1
                self.commands += len(batch)
                answers = await self._call([command for command, _ in batch])
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._in_flight -= 1

    async def _endpoint(self) -> Endpoint:
        endpoint: Endpoint = await self.handle.endpoint.remote()
        return endpoint

    async def _call(self, commands: Sequence[Command[Any]]) -> list[Answer]:
        try:
            answers = await self.channel.call(commands)
        except Exception as error:  # the host died, restarts, is frozen, or cannot be reached
            log.warning("shard %d unreachable: %s", self.shard, error)
            failure = Failure(
                "ActorUnavailable", "UNAVAILABLE", f"shard {self.shard} is not reachable; retry"
            )
            return [(False, failure)] * len(commands)
        return answers


class RayPeers:
    """A host's way to the other shards (engine/placement.py `Peers`)."""

    def __init__(self, clients: dict[int, ShardClient], own: int) -> None:
        self.clients = clients
        self.own = own

    async def ask(self, shard: int, command: Command[R]) -> R:
        return await self.clients[shard].ask(command)

    async def release_holds(self, user_id: str) -> None:
        calls = [
            client.handle.release_holds.remote(user_id)
            for shard, client in self.clients.items()
            if shard != self.own
        ]
        for call in calls:
            try:
                await call
            except Exception as error:  # best effort: a hold not released still lapses
                log.warning("releasing the holds of %s elsewhere failed: %s", user_id, error)
