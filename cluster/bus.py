"""Committed events from the shard hosts to the gateways, over Redis pub/sub.

A host publishes each group commit's journal rows (actor key, actor seq, kind, JSON payload)
once they are durable, in commit order, on one connection: per actor (an actor lives on one
host) they arrive in order. Pub/sub keeps nothing: a gateway that misses a message finds the
gap by the actor's sequence numbers (or, if that actor goes quiet, by comparing its replica
with the hosts' latest sequence numbers, cluster/replica.py) and reloads the actor from the
journal. Catalog changes (a concert put on sale) travel on a channel of their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from engine.views import GatewayView
from persistence.rows import EncodedRow

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def scope_of(database_url: str) -> str:
    """The prefix of every Redis name of the cluster that runs on `database_url` (two
    clusters sharing a Redis never hear each other)."""
    return f"concert-queue:{hashlib.sha256(database_url.encode()).hexdigest()[:12]}"


def channels(database_url: str) -> tuple[str, str]:
    """The events and catalog channels of the cluster that runs on `database_url`."""
    scope = scope_of(database_url)
    return f"{scope}:events", f"{scope}:catalog"


class Publisher:
    """A host's side: `publish(rows)` from the journal's commit listener (never blocks)."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis: Any = aioredis.from_url(redis_url)
        self.channel = channel
        self._pending: list[EncodedRow] = []
        self._wakeup = asyncio.Event()
        self.published = 0
        self.lost = 0

    def publish(self, rows: list[EncodedRow]) -> None:
        self._pending += rows
        self._wakeup.set()

    async def run(self) -> None:
        """Send what was committed, in order, until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            rows, self._pending = self._pending, []
            if not rows:
                continue
            try:
                await self.redis.publish(self.channel, orjson.dumps(rows))
                self.published += len(rows)
            except Exception as error:  # the gateways find the gap and reload
                self.lost += len(rows)
                log.warning("publishing %d events failed: %s", len(rows), error)

    async def publish_raw(self, channel: str, payload: bytes) -> None:
        await self.redis.publish(channel, payload)

    async def close(self) -> None:
        await self.redis.aclose()


class Subscriber:
    """A gateway's side: calls `on_rows(rows)` for every message of the events channel and
    `on_catalog(payload)` for every message of the catalog channel."""

    def __init__(
        self,
        redis_url: str,
        events: str,
        catalog: str,
        on_rows: Callable[[list[EncodedRow]], None],
        on_catalog: Callable[[bytes], None],
    ) -> None:
        self.redis: Any = aioredis.from_url(redis_url)
        self.events = events
        self.catalog = catalog
        self.on_rows = on_rows
        self.on_catalog = on_catalog
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, resubscribing after a lost connection."""
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("the event bus failed (resubscribing): %s", error)
                await asyncio.sleep(0.5)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.events, self.catalog)
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                channel = message["channel"].decode()
                if channel == self.events:
                    self.on_rows([tuple(row) for row in orjson.loads(message["data"])])
                elif channel == self.catalog:
                    self.on_catalog(message["data"])
        finally:
            await pubsub.aclose()

    async def close(self) -> None:
        await self.redis.aclose()


REGISTER_EVERY = 3.0  # seconds between two renewals of a gateway's entry
REGISTERED_FOR = 10  # seconds an entry lives unless renewed


class GatewayRegistry:
    """The gateways alive, each an entry in Redis that it renews (for `/admin/cluster`)."""

    def __init__(self, redis_url: str, scope: str) -> None:
        self.redis: Any = aioredis.from_url(redis_url)
        self.prefix = f"{scope}:gateway:"

    async def keep(self, index: int, describe: Callable[[], GatewayView]) -> None:
        """Keep this gateway's entry fresh until cancelled."""
        while True:
            try:
                view = describe()
                await self.redis.set(f"{self.prefix}{index}", orjson.dumps(view), ex=REGISTERED_FOR)
            except Exception as error:
                log.debug("registering gateway %d: %s", index, error)
            await asyncio.sleep(REGISTER_EVERY)

    async def gateways(self) -> list[GatewayView]:
        views = []
        try:
            keys = sorted([key async for key in self.redis.scan_iter(f"{self.prefix}*")])
            for raw in await self.redis.mget(keys) if keys else []:
                if raw is not None:
                    views.append(GatewayView(**orjson.loads(raw)))
        except Exception as error:
            log.debug("listing gateways: %s", error)
        return sorted(views, key=lambda view: view.index)

    async def close(self) -> None:
        await self.redis.aclose()
