"""`concert-queue serve --cluster`: the service as a cluster on Ray, from one command.

1. the database: PostgreSQL only (created if missing), schema and demo catalog as for the
   embedded service; refused while an embedded instance serves it (its `engine` lease);
2. Ray: a local cluster on this machine, or the one at `RAY_ADDRESS`;
3. the shard hosts: one named Ray actor per shard (`shard-<n>`), restarted by Ray whenever it
   dies, each recovered before the gateways start;
4. the gateways: `CLUSTER_GATEWAYS` processes on the shared `PORT` (cluster/gateway.py),
   restarted by this launcher if one exits;
5. SIGTERM or Ctrl-C: the gateways drain, the hosts flush their journals and give their
   leases up, Ray stops (if this launcher started it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cluster.host import ShardHost, host_name
from cluster.settings import NAMESPACE, ClusterSettings
from persistence.catalog import seed_demo_if_empty
from persistence.database import connect, ensure_schema
from persistence.lease import LeaseHeld, blocker
from web.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # seconds for every host to recover
STOP_TIMEOUT = 30.0  # seconds for the gateways to drain
SUPERVISE_EVERY = 0.5


def ensure_database(url: str) -> None:
    """Create the database of `url` if the server does not have it yet."""
    target = make_url(url)
    name = target.database
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if found is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                log.info("created the database %s", name)
    finally:
        admin.dispose()


def prepare_database(settings: Settings) -> None:
    """Database, schema and demo catalog; LeaseHeld while an embedded instance serves it."""
    ensure_database(settings.database_url)
    database = connect(settings.database_url)
    try:
        ensure_schema(database)
        refusal = blocker(database, mode="takeover")
        if refusal is not None:
            raise LeaseHeld(refusal)
        seed_demo_if_empty(database, settings.engine.seats_per_date)
    finally:
        database.dispose()


def placement(shard: int, nodes: list[str]) -> Any:
    """Where a shard's host goes: the nodes alive at the start in turn, so that a node's loss
    is as few shards' as can be. Soft, so that Ray restarts a host elsewhere when its node is
    gone. (Ray's own SPREAD is best effort: on a busy node it may put every host on one.)"""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not nodes:
        return "SPREAD"
    return NodeAffinitySchedulingStrategy(nodes[shard % len(nodes)], soft=True)


def start_hosts(settings: Settings, cluster: ClusterSettings) -> list[Any]:
    import ray

    remote_host: Any = ray.remote(ShardHost)
    every_node: Any = ray.nodes  # untyped in Ray
    nodes = sorted(node["NodeID"] for node in every_node() if node["Alive"])
    hosts = [
        remote_host.options(
            name=host_name(shard),
            namespace=NAMESPACE,
            max_restarts=-1,  # Ray starts a host that dies again, and it recovers
            max_task_retries=0,  # a call it did not answer is the caller's to retry
            max_concurrency=1000,
            scheduling_strategy=placement(shard, nodes),
        ).remote(
            shard,
            cluster.shards,
            settings.database_url,
            cluster.redis_url,
            settings.engine,
            NAMESPACE,
        )
        for shard in range(cluster.shards)
    ]
    infos = ray.get([host.start.remote() for host in hosts], timeout=START_TIMEOUT)
    for info in infos:
        log.info(
            "shard %d on %s pid %d, epoch %d, recovered in %.2f s",
            info.shard, info.node, info.pid, info.epoch, info.recovery_seconds,
        )  # fmt: skip
    return hosts


class Gateways:
    """The gateway processes, restarted if one exits while the cluster runs."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        self.count = count
        self.env = env
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts = 0

    def start(self, index: int) -> None:
        env = {**self.env, "CLUSTER_GATEWAY_INDEX": str(index)}
        self.processes[index] = subprocess.Popen([sys.executable, "-m", "cluster.gateway"], env=env)

    def start_all(self) -> None:
        for index in range(self.count):
            self.start(index)

    def supervise(self) -> None:
        for index, process in list(self.processes.items()):
            if process.poll() is not None:
                log.warning("gateway %d exited (%s); starting it again", index, process.returncode)
                self.restarts += 1
                self.start(index)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def serve_cluster(settings: Settings, log_level: str = "info") -> int:
    """Run the cluster until SIGTERM or SIGINT; the exit status."""
    import ray

    cluster = ClusterSettings.from_env()
    try:
        prepare_database(settings)
    except LeaseHeld as held:
        print(f"concert-queue: {held}", file=sys.stderr)
        return 2
    started_ray = cluster.ray_address is None
    # "local", not None: None would join whatever cluster `ray start` last left in
    # /tmp/ray/ray_current_cluster on this machine, dead or someone else's.
    ray.init(
        address=cluster.ray_address or "local",
        namespace=NAMESPACE,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        hosts = start_hosts(settings, cluster)
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "HOST": settings.host,
            "PORT": str(settings.port),
            "ADMIN_TOKEN": settings.admin_token,
            "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
            "CLUSTER_LOG_LEVEL": log_level,
        }
        gateways = Gateways(cluster.gateways, env)
        gateways.start_all()
        print(f"concert-queue cluster on {settings.url}", flush=True)
        print(f"database: {settings.database_url}", flush=True)
        print(
            f"{cluster.shards} shard hosts, {cluster.gateways} gateways "
            f"(each also on port {settings.port + 1}..{settings.port + cluster.gateways})",
            flush=True,
        )
        if settings.admin_token_generated:
            print(f"admin token (generated; set ADMIN_TOKEN to fix it): {settings.admin_token}")
        sys.stdout.flush()
        while not stopping:
            time.sleep(SUPERVISE_EVERY)
            gateways.supervise()
        log.info("stopping: draining the gateways, then the shard hosts")
        gateways.stop()
        ray.get([host.stop.remote() for host in hosts], timeout=STOP_TIMEOUT)
        return 0
    finally:
        # Ray's own shutdown signals its processes; this one has nothing left to drain.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if started_ray:
            ray.shutdown()
