"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and real servers.

Each server is the real service, started as the API tests start it (`tests.api.server`), on a
free 127.0.0.1 port with a SQLite file in a temporary directory, once per session: one with
long holds for most tests and one with holds of a few seconds for the expiry test. Tests that
change the waiting room through the admin API put it back afterwards.

Locally the suite skips when /usr/bin/chromium is missing; with `CI=true` it fails instead.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from tests.api.server import Server as ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots of every step land here (ignored by git); the README's pictures are copies.
SCREENSHOTS = ROOT / "tests" / "screenshots" / "browser"
ADMIN_TOKEN = "browser-tests-admin-token"
ADMIT_INTERVAL_SECONDS = 0.2
ACTIVE_TTL_SECONDS = 600
LONG_HOLD_SECONDS = 120
SHORT_HOLD_SECONDS = 4
STEP_TIMEOUT_MS = 10_000
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
WIDE: ViewportSize = {"width": 1440, "height": 1200}


@dataclass
class Server:
    base_url: str
    admin_token: str
    log_path: Path

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the admin API as the operator (outside the browser)."""
        response = httpx.request(
            method,
            self.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def queue_state(self) -> dict[str, Any]:
        """The waiting room's published summary, from GET /admin/actors."""
        data = self.admin("GET", "/admin/actors")
        actors = data if isinstance(data, list) else data["actors"]
        room = next(a for a in actors if a["key"] == "waiting-room")
        state: dict[str, Any] = room["state"]
        return state

    def reset_queue(self) -> None:
        """Admission running, default batch, short interval: what every test starts from."""
        self.admin("POST", "/admin/queue/resume")
        self.admin(
            "PATCH",
            "/admin/queue",
            {
                "batchSize": 100,
                "intervalSeconds": ADMIT_INTERVAL_SECONDS,
                "activeTtlSeconds": ACTIVE_TTL_SECONDS,
            },
        )


@contextmanager
def running_server(workdir: Path, **env: str) -> Iterator[Server]:
    """The real service in a subprocess, ready (GET /readyz is 200) when this yields."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = ServiceProcess(
        workdir,
        {
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "ADMIT_INTERVAL_SECONDS": str(ADMIT_INTERVAL_SECONDS),
            "HOLD_SECONDS": str(LONG_HOLD_SECONDS),
            "ACTIVE_TTL_SECONDS": str(ACTIVE_TTL_SECONDS),
            **env,
        },
    )
    try:
        process.start()
        yield Server(process.url, ADMIN_TOKEN, process.log_path)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": browser tests must run in CI")
        pytest.skip(message)
    return CHROMIUM


# Per module: Playwright's sync API keeps an event loop of its own running in this thread until
# it stops, and a module elsewhere that borrows this fixture (tests/cluster's dashboard test) must
# not leave it running under the asyncio tests that follow it (a package-scoped fixture lives
# until its own package, tests/browser, is done, which it already was: to the session's end).
@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="package")
def short_hold_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("short-hold-server")
    with running_server(workdir, HOLD_SECONDS=str(SHORT_HOLD_SECONDS)) as running:
        yield running


@pytest.fixture
def queue_admin(server: Server) -> Iterator[Server]:
    """The server, for a test that reconfigures its waiting room; reset afterwards."""
    server.reset_queue()
    yield server
    server.reset_queue()


@dataclass
class Screenshots:
    folder: Path
    count: int = 0

    def take(self, page: Page, name: str, *, full_page: bool = True) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    """Where this test's screenshots go: tests/screenshots/browser/<test name>/."""
    folder = SCREENSHOTS / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return Screenshots(folder)


@dataclass
class Pages:
    """Opens pages, each in its own browser context (its own sessionStorage and cookies)."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(
        self, url: str, viewport: ViewportSize | None = None, *, refused_sockets: int = 0
    ) -> Page:
        """A fresh page at `url` whose first `refused_sockets` websockets are closed at once."""
        context = self.browser.new_context(viewport=viewport or DESKTOP)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        if refused_sockets:
            attempts = itertools.count(1)

            def refuse_then_connect(socket: WebSocketRoute) -> None:
                if next(attempts) <= refused_sockets:
                    socket.close(code=1011)
                else:
                    socket.connect_to_server()

            page.route_web_socket(re.compile(r"/ws\b"), refuse_then_connect)
        page.on("pageerror", lambda error: self.errors.append(f"{url}: {error}"))
        page.goto(url)
        return page


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    for context in opened.contexts:
        context.close()
    assert opened.errors == [], "uncaught JavaScript errors in the pages"


def unique(prefix: str) -> str:
    """A user id no other test (or earlier run against the same server) uses."""
    return f"{prefix}-{time.time_ns() % 10**12}"
