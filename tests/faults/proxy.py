"""A TCP proxy that breaks the network on demand, for fault tests of the database link.

    with FaultProxy(("127.0.0.1", 5432)) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
        ...                      # the service talks to PostgreSQL through the proxy
        proxy.cut()              # every connection reset, new ones refused
        proxy.restore()

It listens on 127.0.0.1 (a free port, kept across every switch) and forwards each accepted
connection to `upstream`. At run time it is switched, from any thread, to one of:

- `cut`: every open connection is reset at once and new ones are refused (the listener is
  closed), as when the database restarts or a middlebox drops its state;
- `freeze`: connections stay open but no byte is forwarded either way; new connections are
  accepted (the handshake completes) and stay silent, as in a partition behind a live proxy;
- `drop`: a black hole: open connections stall as in `freeze`, and a new connection's SYN goes
  unanswered, so `connect` hangs (the listener's accept queue is kept full: Linux drops SYNs
  to a listener whose accept queue is full);
- `restore`: forwarding again; stalled connections carry on with the bytes they held, and
  connections accepted while frozen are only then connected upstream.

A switch returns once it is in effect. The proxy runs its own asyncio loop in a daemon thread,
so it keeps working while the caller's thread or event loop blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeVar, final

T = TypeVar("T")

CHUNK: Final = 64 * 1024
SWITCH_TIMEOUT: Final = 10.0  # seconds a switch may take before the caller gives up


class Mode(enum.StrEnum):
    OPEN = "open"
    CUT = "cut"
    FROZEN = "frozen"
    DROPPED = "dropped"


@dataclass(eq=False, slots=True)
class _Link:
    """One client connection and, once connected, its upstream twin."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@final
class FaultProxy:
    """Forwards 127.0.0.1:`port` to `upstream`; `cut`, `freeze`, `drop` and `restore` it."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0  # chosen when started, then kept
        self._mode = Mode.OPEN
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Loop-side state: only touched from the proxy's own thread.
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._black_hole: list[socket.socket] = []
        self._links: set[_Link] = set()

    # -- the caller's side (any thread) --------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connections(self) -> int:
        """Client connections open now (stalled ones included)."""
        return len(self._links)

    def start(self) -> None:
        """Listen and forward; returns once the port accepts connections."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._call(self._begin())

    def close(self) -> None:
        """Close every connection and the listener, and end the proxy's thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._end())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=SWITCH_TIMEOUT)
            loop.close()
            self._loop = self._thread = None

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until `restore`."""
        self._call(self._switch(Mode.CUT))

    def freeze(self) -> None:
        """Stop forwarding bytes both ways; new connections are accepted and stay silent."""
        self._call(self._switch(Mode.FROZEN))

    def drop(self) -> None:
        """A black hole: open connections stall and new ones never complete their handshake."""
        self._call(self._switch(Mode.DROPPED))

    def restore(self) -> None:
        """Forward again: stalled connections carry on, new ones are accepted and forwarded."""
        self._call(self._switch(Mode.OPEN))

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(SWITCH_TIMEOUT)

    # -- the proxy's loop ----------------------------------------------------------------------

    async def _begin(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _end(self) -> None:
        self._unlisten()
        await self._reset_links()

    async def _switch(self, mode: Mode) -> None:
        assert self._flowing is not None
        self._unlisten()
        if mode is Mode.CUT:
            await self._reset_links()
        elif mode is Mode.DROPPED:
            self._black_hole = _black_hole(self.host, self.port)
        else:
            await self._listen()
        if mode is Mode.OPEN:
            self._flowing.set()
        else:
            self._flowing.clear()
        self._mode = mode

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _unlisten(self) -> None:
        # `close` shuts the listening socket at once; `wait_closed` is not awaited because
        # (from Python 3.12) it also waits for every accepted connection to end.
        if self._server is not None:
            self._server.close()
            self._server = None
        for sock in self._black_hole:
            sock.close()
        self._black_hole = []

    async def _reset_links(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        for link in list(self._links):
            for writer in (link.client, link.upstream):
                if writer is not None:
                    _reset(writer)
            for task in link.tasks:
                task.cancel()
                tasks.append(task)
        self._links.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self._links.add(link)
        current = asyncio.current_task()
        assert current is not None and self._flowing is not None
        link.tasks.add(current)
        try:
            await self._flowing.wait()  # accepted while frozen: silent until restored
            up_reader, link.upstream = await asyncio.open_connection(*self.upstream)
            async with asyncio.TaskGroup() as tg:
                link.tasks.add(tg.create_task(self._pump(reader, link.upstream)))
                link.tasks.add(tg.create_task(self._pump(up_reader, writer)))
        except (OSError, asyncio.CancelledError, ExceptionGroup):
            pass  # a reset, a cut, or an unreachable upstream: the link just ends
        finally:
            self._links.discard(link)
            for end in (writer, link.upstream):
                if end is not None:
                    end.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flowing = self._flowing
        assert flowing is not None
        while True:
            await flowing.wait()
            data = await reader.read(CHUNK)
            await flowing.wait()  # frozen while this chunk was on its way: hold it
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset rather than an orderly FIN: the peer sees the link die."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _black_hole(host: str, port: int) -> list[socket.socket]:
    """A listener on `port` that accepts nothing and whose accept queue is full, so that
    every SYN to it is dropped; returned with the connection that fills the queue."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(0)  # a queue of one: the filler takes it
    filler = socket.create_connection((host, port), timeout=SWITCH_TIMEOUT)
    return [filler, listener]
