"""`concert-queue serve`: run the service under uvicorn (uvloop + httptools).

    concert-queue serve [--host H] [--port P] [--database-url URL]

Flags override the environment (docs/design.md, "Configuration"). It prints the URL and the admin
token (a random one unless ADMIN_TOKEN is set). SIGTERM or Ctrl-C drains: no new connections,
requests on open ones answered 503 UNAVAILABLE, websockets closed with 1001, in-flight requests
and queued actor turns finished, the journal flushed; then the process exits.

The HTTP protocol is uvicorn's httptools one guarded by web.protocol (head size and time,
connection limit), and no log line carries a token (web.logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn

from persistence.database import connect, ensure_schema, normalize_url
from persistence.lease import LeaseHeld, blocker
from web.admin_token import token_file, with_stable_admin_token
from web.app import ServiceApp, create_app
from web.limits import Limits
from web.logs import redact_tokens
from web.protocol import Guard, GuardedHttpToolsProtocol, protocol_class
from web.runtime import Runtime
from web.settings import Settings, SettingsError

GRACEFUL_SHUTDOWN_SECONDS = 15
WS_MAX_MESSAGE = 16 * 1024
READY_POLL_SECONDS = 0.1
BACKLOG = 4096  # a crowd of browsers connecting at once (net.core.somaxconn caps it)


class DrainingServer(uvicorn.Server):
    """A uvicorn server that closes websockets with 1001 before uvicorn's own shutdown.

    uvicorn would close them with 1012 (service restart) after it stopped listening; we stop
    listening first (and answer 503 to any request still arriving on an open connection), then
    let the hub say "going away", then let uvicorn finish the rest.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        runtime: Runtime,
        protocol: type[GuardedHttpToolsProtocol],
        when_ready: Sequence[socket.socket] = (),
    ) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.protocol = protocol
        self.guard = protocol.guard
        self.when_ready = list(when_ready)
        self._joining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.when_ready and self.started:
            self._joining = asyncio.create_task(self._listen_once_ready())

    async def _listen_once_ready(self) -> None:
        """Listen on `when_ready` once the runtime serves. A gateway sharing a port with others
        (SO_REUSEPORT) joins it only then: until it listens the kernel hands its share of new
        connections to the gateways that can answer them, not to one that would say 503."""
        while not self.runtime.ready:
            await asyncio.sleep(READY_POLL_SECONDS)
        config, protocol = self.config, self.protocol

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            # As uvicorn's startup builds its protocols.
            return protocol(
                config=config, server_state=self.server_state, app_state=self.lifespan.state,
                _loop=_loop,
            )  # fmt: skip

        loop = asyncio.get_running_loop()
        for sock in self.when_ready:
            server = await loop.create_server(create_protocol, sock=sock, backlog=config.backlog)
            self.servers.append(server)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has shut down, so the process would die "killed
        # by SIGTERM"; after a complete drain we exit with status 0 instead.
        self._captured_signals.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._joining is not None:
            self._joining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._joining
        self.guard.stop(self.server_state.connections)
        for server in self.servers:
            server.close()
        await self.runtime.drain()
        await super().shutdown(sockets)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="concert-queue", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP and websocket service")
    serve.add_argument("--host", help="interface to listen on (HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (PORT, default 8000)")
    serve.add_argument("--database-url", help="sqlite:///file.db or postgresql+psycopg://...")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--cluster",
        action="store_true",
        help="run as a cluster on Ray (as CLUSTER=ray does): shard hosts and gateways",
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    changes = {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("database_url", args.database_url),
        )
        if value is not None
    }
    settings = settings.replace(**changes)
    url = normalize_url(settings.database_url)
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise SettingsError(f"unsupported database URL {settings.database_url!r}")
    return settings


def raise_open_files_limit() -> None:
    """Every websocket is a file descriptor: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(settings: Settings, log_level: str = "info") -> int:
    """The embedded service: every actor in this process, on the database it owns alone."""
    refusal = another_instance(settings.database_url)
    if refusal is not None:
        print(f"concert-queue: {refusal}", file=sys.stderr)
        return 2
    print(f"database: {settings.database_url}", flush=True)
    settings = with_stable_admin_token(settings)
    return run_server(settings, create_app(settings), log_level)


def run_server(
    settings: Settings,
    app: ServiceApp,
    log_level: str = "info",
    sockets: list[socket.socket] | None = None,
    when_ready: Sequence[socket.socket] = (),
) -> int:
    """Serve `app` under uvicorn with the service's protocol, limits and drain, on
    `settings.host:port` (or on `sockets` already bound, and on `when_ready` once the service is
    ready); the exit status."""
    raise_open_files_limit()
    limits = Limits.for_process(settings)
    protocol = protocol_class(Guard(limits))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=protocol,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE,
        # Messages are a few dozen bytes: compressing each one for 10,000 sockets costs CPU
        # and memory (a zlib context per socket) for nothing.
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        backlog=BACKLOG,
    )
    redact_tokens()  # uvicorn.Config has just configured its loggers
    print(f"concert-queue on {settings.url}", flush=True)
    if settings.admin_token_generated:
        kept = token_file(settings.database_url)
        where = f"kept in {kept}" if kept is not None else "new at each start"
        print(
            f"admin token (generated, {where}; set ADMIN_TOKEN to choose one): "
            f"{settings.admin_token}"
        )
    else:
        print("admin token: the value of ADMIN_TOKEN")
    print(
        f"connections: at most {limits.max_connections}, request heads "
        f"{limits.max_head_bytes // 1024} KiB within {limits.head_timeout:g} s"
    )
    sys.stdout.flush()
    server = DrainingServer(config, app.runtime, protocol, when_ready)
    server.run(sockets=sockets)
    return 0 if server.started else 1


def another_instance(url: str) -> str | None:
    """Why this instance must not start: another one serves the database (persistence/lease.py).
    None also when the database cannot be reached yet (the service then retries opening it)."""
    engine = connect(url)
    try:
        ensure_schema(engine)
        return blocker(engine, mode="exclusive")
    except LeaseHeld as held:
        return str(held)
    except Exception:
        return None
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    clustered = args.cluster or os.environ.get("CLUSTER", "").lower() == "ray"
    try:
        settings = settings_from(args)
        if clustered:
            from cluster.settings import cluster_database_url

            given = args.database_url or os.environ.get("DATABASE_URL") or None
            settings = settings.replace(database_url=cluster_database_url(given))
    except SettingsError as error:
        print(f"concert-queue: {error}", file=sys.stderr)
        return 2
    if clustered:
        from cluster.launch import serve_cluster

        return serve_cluster(settings, args.log_level)
    return serve(settings, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
