"""Fixtures of the API tests: real servers, spoken to over real HTTP and real websockets.

`server` is shared by most tests (session scope); it admits every 50 ms so admission never
holds a test up, and tests that change the waiting room through the admin API put it back.
Tests needing other settings (short holds, a tiny mailbox, a crash) use `start_server`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from tests.api.client import Api
from tests.api.server import Server, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("api-server"), {}) as running:
        yield running


class StartServer(Protocol):
    def __call__(
        self,
        env: dict[str, str],
        *,
        wait_ready: bool = True,
        log_level: str = "warning",
        open_files: int | None = None,
    ) -> Server: ...


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers with their own settings; every one is stopped after the test."""
    with contextlib.ExitStack() as started:
        count = itertools.count()

        def start(
            env: dict[str, str],
            *,
            wait_ready: bool = True,
            log_level: str = "warning",
            open_files: int | None = None,
        ) -> Server:
            directory = tmp_path / f"server-{next(count)}"
            server = running_server(
                directory, env, wait_ready=wait_ready, log_level=log_level, open_files=open_files
            )
            return started.enter_context(server)

        yield start


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=20, limits=limits) as client:
        yield client


@pytest.fixture
def api(server: Server, http: httpx.AsyncClient) -> Api:
    return Api(server, http)
