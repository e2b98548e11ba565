"""A gateway: one process serving the whole HTTP and websocket contract of the service.

    python -m cluster.gateway        # started (and restarted) by cluster/launch.py

It runs the same web layer as the embedded service (web/), on the engine's face as a cluster
offers it (cluster/face.py): commands to the shard hosts, reads from a replica of every actor
fed by the shards' events, its own websockets and rank passes. It keeps nothing of its own:
any gateway can answer any request, and one that dies only takes its open connections with
it. Every gateway listens on the shared port (SO_REUSEPORT: the kernel spreads connections)
and on a port of its own, `PORT + 1 + index`, for checks and tests that want one gateway. It
listens on the shared port only once it serves (recovered hosts, loaded replica), so a gateway
(re)starting takes no connections it would answer 503.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread

from cluster.bus import GatewayRegistry, Publisher, Subscriber, channels, scope_of
from cluster.face import ClusterEngine
from cluster.host import host_name
from cluster.replica import Replica
from cluster.settings import NAMESPACE, ClusterSettings, cluster_database_url
from engine.face import Engine
from engine.views import GatewayView
from persistence.catalog import read_catalog
from persistence.database import connect
from web.app import create_app
from web.cli import run_server
from web.settings import Settings

log = logging.getLogger(__name__)

HOSTS_TIMEOUT = 120.0  # seconds to wait for every shard host to have recovered


def own_port(port: int, index: int) -> int:
    return port + 1 + index


@asynccontextmanager
async def open_cluster_engine(
    settings: Settings,
    attach: Callable[[Engine], None],
    *,
    cluster: ClusterSettings,
    hosts: dict[int, Any],
    index: int,
    websockets: Callable[[], int],
) -> AsyncIterator[Engine]:
    """The engine's face of a gateway: ready once every host has recovered and the replica
    is loaded, with the bus heard from before the load (nothing falls in between)."""
    database = await anyio.to_thread.run_sync(connect, settings.database_url)
    events, catalog_channel = channels(settings.database_url)
    publisher = Publisher(cluster.redis_url, events)
    registry = GatewayRegistry(cluster.redis_url, scope_of(settings.database_url))
    try:
        catalog = await anyio.to_thread.run_sync(read_catalog, database)
        replica = Replica(database, settings.engine, catalog)
        engine = ClusterEngine(database, replica, hosts, publisher, catalog_channel, registry)
        attach(engine)
        subscriber = Subscriber(
            cluster.redis_url, events, catalog_channel, engine.on_rows, engine.on_catalog
        )
        started = time.time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(subscriber.run)
            await subscriber.subscribed.wait()
            with anyio.fail_after(HOSTS_TIMEOUT):
                await asyncio.gather(*(host.start.remote() for host in hosts.values()))
            await engine.load()
            tg.start_soon(engine.watch_heads)
            tg.start_soon(engine.watch_figures)
            describe = functools.partial(
                GatewayView,
                index,
                os.uname().nodename,
                os.getpid(),
                own_port(settings.port, index),
                started,
            )
            tg.start_soon(registry.keep, index, lambda: describe(websockets()))
            engine.ready = True
            try:
                yield engine
            finally:
                engine.ready = False
                tg.cancel_scope.cancel()
        await subscriber.close()
    finally:
        await publisher.close()
        await registry.close()
        database.dispose()


def listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main() -> int:
    import ray

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cluster = ClusterSettings.from_env()
    settings = Settings.from_env()
    settings = settings.replace(
        database_url=cluster_database_url(os.environ.get("DATABASE_URL") or None)
    )
    index = int(os.environ.get("CLUSTER_GATEWAY_INDEX", "0"))
    log_level = os.environ.get("CLUSTER_LOG_LEVEL", "warning")
    ray.init(
        address=cluster.ray_address or "auto",
        namespace=NAMESPACE,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    hosts = {
        shard: ray.get_actor(host_name(shard), namespace=NAMESPACE)
        for shard in range(cluster.shards)
    }
    shared = listening_socket(settings.host, settings.port, shared=True)
    own = listening_socket(settings.host, own_port(settings.port, index), shared=False)
    holder: list[Callable[[], int]] = []
    opener = functools.partial(
        open_cluster_engine,
        cluster=cluster,
        hosts=hosts,
        index=index,
        websockets=lambda: holder[0]() if holder else 0,
    )
    app = create_app(settings, engine_opener=opener)
    holder.append(lambda: app.runtime.hub.count)
    return run_server(settings, app, log_level, sockets=[own], when_ready=[shared])


if __name__ == "__main__":
    sys.exit(main())
