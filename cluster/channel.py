"""The command channel to a shard host: one TCP connection, batches of commands as frames.

A Ray actor call costs close to a millisecond of CPU between caller and callee on this
machine (loadtests/bench_cluster.py measures it; docs/scaling.md has the figures), twenty
times what the single process spends on a whole hold. So Ray places, supervises and restarts
the hosts, and answers the rare calls (recovery, figures, heads, a new concert); the
commands themselves travel on a connection of their own to the host's event loop, where a
batch costs tens of microseconds. The host is found through Ray: its actor hands out its
`Endpoint` (address, a secret made at its start, its lease's epoch), so a restarted host is
reached at its new address, and only who got the secret from Ray can talk to it. A caller on
the host's machine connects to its Unix socket instead (loopback TCP costs the kernel about
twice as much per message).

A frame is a 4-byte length and a pickle. The first frame a caller sends is the secret; then
each frame is `(call id, [command, ...])` one way and `(call id, [answer, ...])` the other,
answered in any order. A connection that breaks, or a call not answered within
`CALL_TIMEOUT` (a frozen host), fails every call on it: the caller answers those commands 503
(whether they were done is unknown; charges and payments are idempotent, a hold lapses) and
the next call asks Ray for the host's endpoint again, which waits for a restarted host's
recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import pickle
import secrets
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.wire import Answer
from engine.commands import Command

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024
CALL_TIMEOUT = 10.0  # seconds: longer than a journal commit may take (its watchdog: 5 s)
HANDSHAKE_TIMEOUT = 5.0  # seconds for a new connection to present the secret
CONNECT_TIMEOUT = 120.0  # seconds for Ray to name the host's endpoint (a restart recovers first)


class ChannelError(Exception):
    """The host could not be reached, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    secret: bytes
    epoch: int
    node: str = ""  # the machine's id (Ray's node id): a caller on it may use `path`
    path: str | None = None  # a Unix socket on that machine, cheaper than TCP over loopback


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def _frame(value: object) -> list[bytes]:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return [HEADER.pack(len(data)), data]


async def _read(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > limit:
        raise ChannelError(f"a frame of {size} bytes")
    return await reader.readexactly(size)


Handler = Callable[[list[Command[Any]]], Awaitable[list[Answer]]]


class ChannelServer:
    """A host's side: runs each batch received through `handle` and sends its answers."""

    def __init__(self, secret: bytes, handle: Handler) -> None:
        self.secret = secret
        self.handle = handle
        self._server: asyncio.Server | None = None
        self._local: asyncio.Server | None = None
        self._path: str | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, address: str, path: str | None = None) -> int:
        """Listen on `address` (and on the Unix socket `path`, for callers on this machine);
        the port chosen."""
        self._server = await asyncio.start_server(self._serve, address, 0)
        if path is not None:
            self._local = await asyncio.start_unix_server(self._serve, path)
            self._path = path
            os.chmod(path, 0o600)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, drop every connection (their callers answer 503)."""
        for server in (self._server, self._local):
            if server is not None:
                server.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
        for writer in list(self._connections):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                secret = await _read(reader, limit=len(self.secret))
            if not hmac.compare_digest(secret, self.secret):
                log.warning("a command channel without the host's secret: closed")
                return
            while True:
                call_id, commands = pickle.loads(await _read(reader))
                # Batches run concurrently: the caller may have a second one in flight.
                task = asyncio.get_running_loop().create_task(
                    self._answer(writer, call_id, commands)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, ChannelError, TimeoutError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _answer(
        self, writer: asyncio.StreamWriter, call_id: int, commands: list[Command[Any]]
    ) -> None:
        answers = await self.handle(commands)
        if not writer.is_closing():
            writer.writelines(_frame((call_id, answers)))


class Channel:
    """A caller's side, to one shard's host: `call(commands)` their answers, in order."""

    def __init__(
        self, shard: int, endpoint: Callable[[], Awaitable[Endpoint]], node: str = ""
    ) -> None:
        self.shard = shard
        self._endpoint = endpoint
        self.node = node  # the caller's machine: a host on it is reached by its Unix socket
        self._ids = itertools.count()
        self._connecting: asyncio.Lock | None = None
        self._connection: _Connection | None = None

    async def call(self, commands: Sequence[Command[Any]]) -> list[Answer]:
        connection = await self._connected()
        return await connection.call(next(self._ids), list(commands))

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and not connection.broken:
            return connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            connection = self._connection
            if connection is None or connection.broken:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        endpoint = await self._endpoint()
                        local = bool(self.node) and endpoint.node == self.node
                        connection = await _Connection.open(endpoint, local=local)
                except (OSError, TimeoutError) as error:
                    raise ChannelError(f"shard {self.shard}: {error!r}") from error
                self._connection = connection
            return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.fail(ChannelError("closed"))


class _Connection:
    def __init__(
        self, endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.broken = False
        self.pending: dict[int, asyncio.Future[list[Answer]]] = {}
        self.reading = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def open(cls, endpoint: Endpoint, *, local: bool) -> _Connection:
        if local and endpoint.path is not None:
            reader, writer = await asyncio.open_unix_connection(endpoint.path)
        else:
            reader, writer = await asyncio.open_connection(endpoint.address, endpoint.port)
        writer.writelines(_frame_raw(endpoint.secret))
        return cls(endpoint, reader, writer)

    async def call(self, call_id: int, commands: list[Command[Any]]) -> list[Answer]:
        future: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        self.writer.writelines(_frame((call_id, commands)))
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                return await future
        except TimeoutError:
            # A host that says nothing for this long is frozen or gone: a restarted one is
            # reached through Ray again, never this connection.
            self.fail(ChannelError(f"no answer within {CALL_TIMEOUT:g} s"))
            raise ChannelError(f"no answer within {CALL_TIMEOUT:g} s") from None
        finally:
            self.pending.pop(call_id, None)

    async def _read_answers(self) -> None:
        try:
            while True:
                call_id, answers = pickle.loads(await _read(self.reader))
                future = self.pending.pop(call_id, None)
                if future is not None and not future.done():
                    future.set_result(answers)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.fail(ChannelError(f"the connection broke: {error!r}"))

    def fail(self, error: ChannelError) -> None:
        self.broken = True
        for future in self.pending.values():
            if not future.done():
                future.set_exception(error)
        self.pending.clear()
        self.writer.close()
        if self.reading is not asyncio.current_task():
            self.reading.cancel()
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


def _frame_raw(data: bytes) -> list[bytes]:
    return [HEADER.pack(len(data)), data]
