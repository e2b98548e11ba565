"""Cluster mode under faults, each under a load of buyers and followed by the audit.

- a shard host SIGKILLed: Ray starts it again, it recovers, its keys serve again;
- a gateway SIGKILLed: the other keeps serving (and the launcher starts it again);
- a zombie: a whole Ray node (its raylet and the shard host on it) SIGSTOPped; Ray declares
  it dead and starts the host on the other node, which takes the shard's lease over; the
  frozen one is SIGCONTed: its late commits are refused (the lease's epoch fences them) and no
  client gets an answer from it.

The books must then hold: every acknowledged charge and payment present, no seat sold twice,
money conserved (loadtests/audit.py), and no buyer told anything the contract forbids.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from loadtests.audit import Audit, audit, settle
from loadtests.buyers import Ledger, Shop, run_buyers
from loadtests.server_process import free_port
from loadtests.service_client import DateOnSale, put_on_sale
from tests.api.server import ADMIN_TOKEN, Server, running_server
from tests.cluster.conftest import (
    RAY_HEALTH,
    START_TIMEOUT,
    cluster_env,
    gateways_of,
    require_redis,
)
from tests.postgres import fresh_postgres_schema, postgres_base_url

pytestmark = pytest.mark.anyio

BUYERS = 6
PRICE = 30
SERVE_AGAIN_TIMEOUT = 90.0  # seconds for a killed host's keys to serve again
FIGURES_SETTLE = 5.0  # seconds for the gateways' cached figures to catch up before the audit
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class RayNodes:
    """A Ray cluster of two nodes on this machine, started by the test."""

    address: str
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    def worker_raylet(self) -> psutil.Process:
        return next(
            p
            for p in psutil.Process(self.worker.pid).children(recursive=True)
            if "raylet" in " ".join(p.cmdline()[:1])
        )


NODES_ALIVE = (
    "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
    " print(sum(node['Alive'] for node in ray.nodes()))"
)


def until_nodes_alive(address: str, count: int, env: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        asked = subprocess.run(
            [sys.executable, "-c", NODES_ALIVE, address],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        alive = asked.stdout.strip().splitlines()[-1:] == [str(count)]
        if alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Ray has not {count} nodes alive: {asked.stdout}{asked.stderr}")
        time.sleep(1)


def ray_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("ray")), "start", *args, "--block",
            "--disable-usage-stats"]  # fmt: skip


@pytest.fixture
def ray_nodes(tmp_path: Path) -> Iterator[RayNodes]:
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **RAY_HEALTH}
    head = subprocess.Popen(
        ray_command("--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"),
        env=env,
        stdout=(tmp_path / "head.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(5)
    worker = subprocess.Popen(
        ray_command(f"--address=127.0.0.1:{port}", "--num-cpus=2"),
        env=env,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    # Both nodes must be in before the cluster starts, or SPREAD may put every host on the
    # head (a busy machine can take long over the worker's start).
    until_nodes_alive(f"127.0.0.1:{port}", 2, env)
    try:
        yield RayNodes(f"127.0.0.1:{port}", head, worker)
    finally:
        for process in (worker, head):
            for child in _tree(process.pid):
                child.send_signal(signal.SIGCONT)
            process.terminate()
        for process in (worker, head):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for child in _tree(process.pid):
                    child.kill()
                process.kill()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def cluster_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    base = postgres_base_url()
    if base is None:
        pytest.skip("DATABASE_URL_TEST is not set")
    require_redis()
    more: dict[str, str] = {"HOLD_SECONDS": "300"}
    if "ray_nodes" in request.fixturenames:
        nodes: RayNodes = request.getfixturevalue("ray_nodes")
        more |= {"RAY_ADDRESS": nodes.address, "RAY_AUTH_MODE": "disabled"}
    with (
        fresh_postgres_schema(base) as url,
        running_server(tmp_path / "cluster", cluster_env(url, **more),
                       start_timeout=START_TIMEOUT) as server,
    ):  # fmt: skip
        gateways_of(server)
        yield server


class Rush:
    """Buyers shopping through the shared port while a fault happens, then the audit."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ledger = Ledger()
        self.stop = anyio.Event()

    async def run(self, fault: Any) -> Audit:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=15) as client:
            dates = await put_on_sale(
                client, self.server.url, ADMIN_TOKEN, prefix="rush", dates=4, seats=2000,
                price=PRICE,
            )  # fmt: skip
            shop = Shop(self.server.url, dates, seats_per_payment=2, give_up_after=120)
            users = [f"buyer{n}" for n in range(BUYERS)]
            async with anyio.create_task_group() as tg:
                buyers = functools.partial(run_buyers, client=client)
                tg.start_soon(buyers, shop, users, self.ledger, self.stop)
                await self.until_payments(3)
                await fault(client, dates)
                await self.until_payments(len(self.ledger.acknowledged_payments()) + 3)
                self.stop.set()
        assert await settle(self.server.url, ADMIN_TOKEN), "payments never settled"
        await anyio.sleep(FIGURES_SETTLE)
        return audit(self.server.url, ADMIN_TOKEN, self.ledger.paid_tokens(), self.ledger)

    async def until_payments(self, count: int) -> None:
        with anyio.fail_after(SERVE_AGAIN_TIMEOUT):
            while len(self.ledger.acknowledged_payments()) < count:
                await anyio.sleep(0.05)

    def check(self, result: Audit) -> None:
        report = "\n".join([self.ledger.summary(), *result.lines()])
        assert not self.ledger.breaches, f"{self.ledger.breaches}\n{report}"
        assert result.ok, report


async def shards(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    cluster = (await client.get(url + "/admin/cluster", headers=ADMIN)).json()
    rows: list[dict[str, Any]] = cluster["shards"]
    return rows


def pid_of(shard: dict[str, Any]) -> int:
    """The pid of a shard's host, from its label shard-<n>@<node>:<pid>."""
    return int(shard["host"].rpartition(":")[2])


async def until_replaced(
    client: httpx.AsyncClient, url: str, shard: int, epoch: int
) -> dict[str, Any]:
    """The shard's row once a host with a newer epoch serves it."""
    with anyio.fail_after(SERVE_AGAIN_TIMEOUT):
        while True:
            row = (await shards(client, url))[shard]
            if row["epoch"] > epoch and row["reachable"] and row["healthy"]:
                return row
            await anyio.sleep(0.2)


async def until_a_hold_succeeds(client: httpx.AsyncClient, url: str, date: DateOnSale) -> float:
    """Seconds until a new buyer holds a seat of `date` (its shard serves again)."""
    started = time.monotonic()
    joined = await client.post(url + "/api/queue/tokens", json={"userId": f"probe{started}"})
    headers = {"Authorization": f"Bearer {joined.json()['token']}"}
    seat = 1900
    with anyio.fail_after(SERVE_AGAIN_TIMEOUT):
        while True:
            seat += 1
            body = {"concertId": date.concert_id, "date": date.date, "seat": seat}
            answer = await client.post(url + "/api/reservations", json=body, headers=headers)
            if answer.status_code == 201:
                return time.monotonic() - started
            await anyio.sleep(0.05)


async def test_a_killed_shard_host_is_started_again_and_serves_its_keys_again(
    cluster_server: Server,
) -> None:
    url = cluster_server.url
    served_again: list[float] = []

    async def kill_shard_1(client: httpx.AsyncClient, dates: list[DateOnSale]) -> None:
        before = (await shards(client, url))[1]
        os.kill(pid_of(before), signal.SIGKILL)
        killed = time.monotonic()
        await until_replaced(client, url, 1, before["epoch"])
        for date in dates:
            await until_a_hold_succeeds(client, url, date)
        served_again.append(time.monotonic() - killed)

    rush = Rush(cluster_server)
    rush.check(await rush.run(kill_shard_1))
    print(f"shard 1's keys served again {served_again[0]:.2f} s after its host was killed")


async def test_a_killed_gateway_leaves_the_other_serving_and_comes_back(
    cluster_server: Server,
) -> None:
    url = cluster_server.url
    other = f"http://127.0.0.1:{cluster_server.port + 1}"  # gateway 0's own port

    async def kill_gateway_1(client: httpx.AsyncClient, dates: list[DateOnSale]) -> None:
        cluster = (await client.get(url + "/admin/cluster", headers=ADMIN)).json()
        victim = next(g for g in cluster["gateways"] if g["index"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)
        for _ in range(20):  # the other gateway answers throughout
            assert (await client.get(other + "/readyz")).status_code == 200
            await anyio.sleep(0.05)
        own = f"http://127.0.0.1:{victim['port']}"
        with anyio.fail_after(SERVE_AGAIN_TIMEOUT):  # and the launcher starts it again
            while True:
                try:
                    if (await client.get(own + "/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.2)

    rush = Rush(cluster_server)
    rush.check(await rush.run(kill_gateway_1))


async def test_a_frozen_node_is_replaced_and_its_host_commits_nothing_once_thawed(
    ray_nodes: RayNodes, cluster_server: Server
) -> None:
    url = cluster_server.url
    raylet = ray_nodes.worker_raylet()
    frozen: list[psutil.Process] = []

    async def freeze_the_worker_node(client: httpx.AsyncClient, dates: list[DateOnSale]) -> None:
        rows = await shards(client, url)
        on_worker = {p.pid for p in raylet.children(recursive=True)}
        row = next(r for r in rows if pid_of(r) in on_worker)
        host = psutil.Process(pid_of(row))
        frozen.extend([raylet, host])
        for process in frozen:
            process.send_signal(signal.SIGSTOP)
        replaced = await until_replaced(client, url, row["shard"], row["epoch"])
        assert replaced["host"] != row["host"]  # another process (on the other node)
        for process in frozen:  # the zombie wakes up after its replacement took over
            process.send_signal(signal.SIGCONT)
        await anyio.sleep(3)
        for date in dates:
            await until_a_hold_succeeds(client, url, date)
        assert not host.is_running() or host.status() == psutil.STATUS_ZOMBIE

    rush = Rush(cluster_server)
    rush.check(await rush.run(freeze_the_worker_node))
