"""A service process for the benchmarks and load tests: start, wait ready, measure, stop.

Always on 127.0.0.1, on a free port, with its log in a file; `stop` drains with SIGTERM and
falls back to SIGKILL, so no run leaves a server behind. `kill` is SIGKILL alone (a crash),
after which `start` runs the server again on the same port and database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answers(
    process: subprocess.Popen[bytes],
    url: str,
    log: Callable[[], str],
    *,
    timeout: float,
    poll: float = 0.1,
) -> None:
    """Return once GET `url` answers 200; RuntimeError (with the server's log) if the process
    exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"the server did not answer {url} within {timeout:.0f} s:\n{log()}")


class ServerProcess:
    """`python -m <module> --port P --database-url URL` with `env` added to the environment."""

    def __init__(
        self,
        module: str,
        directory: Path,
        env: dict[str, str],
        database_url: str = "",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.module = module
        self.start_timeout = start_timeout
        self.directory = directory
        self.env = env
        self.port = free_port()
        self.database_url = database_url or f"sqlite:///{directory / 'concert-queue.db'}"
        self.log_path = directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", self.module]
        if self.module == "web":
            args.append("serve")
        return [*args, "--port", str(self.port), "--database-url", self.database_url]

    def start(self, *, poll: float = 0.1) -> None:
        """Start (again, after `kill` or `stop`: the log goes on in the same file) and return
        once /readyz answers 200, polled every `poll` seconds."""
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        env.pop("DATABASE_URL", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_until_answers(
                self.process, self.url + "/readyz", self.log, timeout=self.start_timeout, poll=poll
            )
        except RuntimeError:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL: no drain, no flush; only what the journal had committed survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system)."""
        if self.process is None:
            return 0.0
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def tree_cpu_seconds(self) -> float:
        """CPU time used so far by the server and every process under it (a cluster's gateways,
        Ray's own processes and its workers), those still running."""
        if self.process is None:
            return 0.0
        total = 0.0
        root = psutil.Process(self.process.pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def rss_bytes(self) -> int:
        if self.process is None:
            return 0
        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self) -> int | None:
        """SIGTERM (the service drains), SIGKILL after 20 s; the exit status."""
        process = self.process
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
