"""One service process for the API tests: `python -m web serve` on a free 127.0.0.1 port with
a SQLite file in its own directory; it can be killed, terminated and started again on the same
database.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.server_process import free_port, wait_until_answers

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "api-tests-admin-token"
START_TIMEOUT = 30.0
BASE_ENV = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "ADMIT_BATCH": "100",
    "ADMIT_INTERVAL_SECONDS": "0.05",
    "ACTIVE_TTL_SECONDS": "600",
    "HOLD_SECONDS": "300",
    "SEATS_PER_DATE": "50",
    "MAX_HOLDS_PER_USER": "4",
}


@dataclass
class Server:
    """One service process; `start` again after `kill`/`terminate` reuses its database."""

    directory: Path
    env: dict[str, str]
    log_level: str = "warning"
    # The process's RLIMIT_NOFILE (soft and hard, so the CLI cannot raise it); None: inherited.
    open_files: int | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    start_timeout: float = START_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def database_url(self) -> str:
        return self.env.get("DATABASE_URL") or f"sqlite:///{self.directory / 'concert-queue.db'}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"server-{self.starts}.log"

    def start(self, *, wait_ready: bool = True) -> None:
        self.starts += 1
        env = {**os.environ, **BASE_ENV, **self.env}
        env.pop("DATABASE_URL", None)
        env["PYTHONPATH"] = str(ROOT)
        command = [
            sys.executable, "-m", "web", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--database-url", self.database_url, "--log-level", self.log_level,
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit_open_files if self.open_files else None,
            )
        self.wait("/readyz" if wait_ready else "/healthz")

    def _limit_open_files(self) -> None:
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def wait(self, path: str) -> None:
        assert self.process is not None
        wait_until_answers(
            self.process, self.url + path, self.log, timeout=self.start_timeout, poll=0.05
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no drain, no flush; only what was durable survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the drained exit; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_server(
    directory: Path,
    env: dict[str, str],
    *,
    wait_ready: bool = True,
    log_level: str = "warning",
    open_files: int | None = None,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Server]:
    """A started server in `directory` (made if need be), stopped when the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    server = Server(
        directory, env, log_level=log_level, open_files=open_files, start_timeout=start_timeout
    )
    try:
        server.start(wait_ready=wait_ready)
        yield server
    finally:
        server.stop()
