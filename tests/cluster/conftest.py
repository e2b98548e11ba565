"""A cluster for the tests: `python -m web serve --cluster`, 2 shard hosts and 2 gateways on
a local Ray, a fresh PostgreSQL schema and the machine's Redis.

Locally the cluster tests are skipped when `DATABASE_URL_TEST` is unset or Redis does not
answer; with `CI=true` they must run, so either fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from loadtests.server_process import wait_until_answers
from tests.api.client import Api
from tests.api.server import Server, running_server
from tests.browser.conftest import browser, chromium, pages, shots  # noqa: F401 (the dashboard's)
from tests.postgres import fresh_postgres_schema, postgres_base_url

SHARDS = 2
GATEWAYS = 2
START_TIMEOUT = 180.0  # Ray, the hosts' recovery and the gateways' replicas, on 2 busy cores
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Ray notices a node that stops answering within seconds instead of half a minute.
RAY_HEALTH = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "4",
}


@dataclass(frozen=True)
class Gateway:
    """One gateway, by its own port."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass(frozen=True)
class Cluster:
    server: Server  # the launcher, and the shared port
    gateways: tuple[Gateway, ...]


def cluster_env(url: str, **more: str) -> dict[str, str]:
    return {
        "CLUSTER": "ray",
        "CLUSTER_SHARDS": str(SHARDS),
        "CLUSTER_GATEWAYS": str(GATEWAYS),
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "HOLD_SECONDS": "4",
        **RAY_HEALTH,
        **more,
    }


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but Redis at {REDIS_URL} does not answer: {error}")
        pytest.skip(f"Redis at {REDIS_URL} does not answer")


def gateways_of(server: Server) -> tuple[Gateway, ...]:
    gateways = tuple(Gateway(server.port + 1 + index) for index in range(GATEWAYS))
    assert server.process is not None
    for gateway in gateways:
        wait_until_answers(
            server.process, gateway.url + "/readyz", server.log, timeout=START_TIMEOUT
        )
    return gateways


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = postgres_base_url()
    if base is None:
        pytest.skip("DATABASE_URL_TEST is not set")
    require_redis()
    with (
        fresh_postgres_schema(base) as url,
        running_server(
            tmp_path_factory.mktemp("cluster"), cluster_env(url), start_timeout=START_TIMEOUT
        ) as server,
    ):
        yield Cluster(server, gateways_of(server))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=20, limits=limits) as client:
        yield client


@pytest.fixture
def apis(cluster: Cluster, http: httpx.AsyncClient) -> tuple[Api, Api]:
    """The test client once per gateway."""
    first, second = cluster.gateways
    return Api(first, http), Api(second, http)


def directory_of(cluster: Cluster) -> Path:
    return cluster.server.directory
