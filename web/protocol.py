"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol with web.limits enforced.

    uvicorn.Config(app, http=protocol_class(guard), ...)   # guard = Guard(limits)

On top of uvicorn's protocol:

- a request head (request line and headers) past `max_head_bytes` is answered 431
  HEADERS_TOO_LARGE; the parser is never fed more of it than that;
- a request must arrive, head and body, within `head_timeout` seconds of the connection's
  start or of the previous answer: if it has not, 408 REQUEST_TIMEOUT when part of a head
  came, else the connection is just closed (uvicorn's keep-alive timeout stops at the first
  byte of a request, so alone it lets a client trickle a head forever);
- a connection past `max_connections` (uvicorn counts HTTP and websocket connections alike) has
  its request, websocket upgrades included, answered 503 OVERLOADED, and must send it within
  `linger_seconds`; past the reserve of descriptors too it is answered as soon as accepted;
- once `Guard.stop` is called (SIGTERM), every request is answered 503 UNAVAILABLE with
  `Connection: close`, and an idle connection is kept `stopping_grace` seconds for a request
  already on its way before it is closed.

Answers written here keep the API's error model and are followed by a lingering close. The
cost per request is a few attribute stores, and per read one length comparison; the deadline
is one timer per connection, re-armed only when it fires.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, cast, final

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from web.errors import (
    HEADERS_TOO_LARGE,
    OVERLOADED,
    REQUEST_TIMEOUT,
    UNAVAILABLE,
    UNAVAILABLE_RETRY_AFTER,
    error_body,
)
from web.limits import Limits

log = logging.getLogger(__name__)

# The head allowance while a body is being read: bodies are web.body's to limit.
READING_BODY = sys.maxsize

REFUSALS_LOG_INTERVAL = 10.0  # seconds between two warnings that connections are refused


@dataclass(frozen=True)
class Refusal:
    """An error answer of the protocol's own, always with `Connection: close`: written raw
    (`encode`) before a request head is complete, or as the app of a request (`asgi`)."""

    status: int
    code: str
    message: str
    retry_after: int | None = None

    @cached_property
    def body(self) -> bytes:
        return json.dumps(error_body(self.code, self.message), separators=(",", ":")).encode()

    @cached_property
    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(self.body)),
        ]
        if self.retry_after is not None:
            headers.append((b"retry-after", b"%d" % self.retry_after))
        return [*headers, (b"connection", b"close")]

    def encode(self, default_headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The whole response, with the server's default headers (date, server) first."""
        phrase = http.HTTPStatus(self.status).phrase.encode()
        lines = [b"HTTP/1.1 %d %s" % (self.status, phrase)]
        lines += [name + b": " + value for name, value in [*default_headers, *self.headers]]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


HEAD_TOO_LARGE = Refusal(431, HEADERS_TOO_LARGE, "the request head is larger than the limit")
HEAD_TIMED_OUT = Refusal(408, REQUEST_TIMEOUT, "the request did not arrive in time")
TOO_MANY_CONNECTIONS = Refusal(
    503, OVERLOADED, "too many open connections; retry shortly", UNAVAILABLE_RETRY_AFTER
)
STOPPING = Refusal(
    503, UNAVAILABLE, "the service is stopping; retry shortly", UNAVAILABLE_RETRY_AFTER
)


@final
class Guard:
    """What the protocols of one server share: the limits, whether it is stopping, and the
    refused connections still lingering (they hold a descriptor too)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.stopping = False
        self.lingering = 0
        self.refused = 0
        self._refusals_logged_at = -REFUSALS_LOG_INTERVAL

    def stop(self, connections: Iterable[object]) -> None:
        """Answer every request from now on 503 UNAVAILABLE, on open connections too."""
        self.stopping = True
        for connection in connections:
            if isinstance(connection, GuardedHttpToolsProtocol):
                connection.answer_every_request(STOPPING)

    def count_refusal(self, open_connections: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= REFUSALS_LOG_INTERVAL:
            self._refusals_logged_at = now
            log.warning(
                "refusing connections: %d open, the limit is %d (MAX_CONNECTIONS); %d refused",
                open_connections,
                self.limits.max_connections,
                self.refused,
            )


def protocol_class(guard: Guard) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, its connections guarded by `guard`."""

    class Guarded(GuardedHttpToolsProtocol):
        pass

    Guarded.guard = guard
    return Guarded


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # The hooks run on every request call HttpToolsProtocol's methods by name: super() would
    # build an object per call.
    guard: ClassVar[Guard]

    # What the current request head may still take; READING_BODY while its body is read.
    _room: int
    _max_head: int
    # Since when the client owes us a request (head and body); None while we owe the answer.
    _owed_since: float | None
    _timeout: float
    _deadline: asyncio.TimerHandle | None = None
    # The answer to every request on this connection, instead of the app's.
    _refusal: Refusal | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's signature (uvicorn narrows it): every transport here is a stream's.
        super().connection_made(cast(asyncio.Transport, transport))
        guard = self.guard
        limits = guard.limits
        self._room = self._max_head = limits.max_head_bytes
        self._timeout = limits.head_timeout
        open_connections = len(self.connections) + guard.lingering
        if open_connections > limits.max_connections:
            guard.count_refusal(open_connections)
            if open_connections > limits.max_connections + limits.max_lingering:
                # Not a descriptor to spare while the request arrives: answer at once.
                self._refuse(TOO_MANY_CONNECTIONS)
                return
            # Answered once its request is read, which may take only a moment.
            self.answer_every_request(TOO_MANY_CONNECTIONS)
            self._timeout = limits.linger_seconds
        elif guard.stopping:
            self.answer_every_request(STOPPING)
        self._owed_since = now = self.loop.time()
        self._deadline = self.loop.call_at(now + self._timeout, self._check_deadline)

    def answer_every_request(self, refusal: Refusal) -> None:
        """From now on answer `refusal` (and close) to a request, instead of running the app."""
        self._refusal = refusal
        self.app = refusal.asgi

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        left = self._room - len(data)
        if left >= 0:
            self._room = left
            HttpToolsProtocol.data_received(self, data)
        else:
            self._head_past_room(data, self._room)

    def _head_past_room(self, data: bytes, room: int) -> None:
        # Feed the parser only what the head may still take: if the head ends within it, the
        # rest is a body or the next request and is fed after; if not, the head is too large.
        self._room = 0  # the parser's callbacks change it once the head is complete
        if room:
            super().data_received(data[:room])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # a malformed request answered 400, or a websocket upgrade
        if self._room == 0:
            self._refuse(HEAD_TOO_LARGE)
        else:
            self.data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._room = READING_BODY
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._room = self._max_head
        cycle = self.cycle
        # Answered before the body was complete: the client owes the next request now.
        self._owed_since = (
            self.loop.time() if cycle is not None and cycle.response_complete else None
        )
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        HttpToolsProtocol.on_response_complete(self)
        if not pipelined and not self.cycle.more_body:
            self._owed_since = self.loop.time()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()  # the websocket protocol takes over the connection
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().handle_websocket_upgrade()

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            # Idle: a request may be on its way already; it is answered 503 (see Guard.stop).
            self.loop.call_later(self.guard.limits.stopping_grace, self._close_if_idle)
        else:
            super().shutdown()

    def _close_if_idle(self) -> None:
        cycle = self.cycle
        if (cycle is None or cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def _check_deadline(self) -> None:
        self._deadline = None
        timeout = self._timeout
        since = self._owed_since
        now = self.loop.time()
        if since is not None and now >= since + timeout:
            if self._room < self._max_head:
                self._refuse(HEAD_TIMED_OUT)
            else:  # nothing of a head came, or a body stalled: nobody is waiting for an answer
                self.transport.close()
            return
        due = now + timeout if since is None else since + timeout
        self._deadline = self.loop.call_at(due, self._check_deadline)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, refusal: Refusal) -> None:
        """Answer `refusal` and close, handing the connection to `Lingering` if that keeps the
        descriptors in use within the limit and its reserve."""
        self._cancel_deadline()
        self.transport.write(refusal.encode(self.server_state.default_headers))
        guard = self.guard
        limits = guard.limits
        if len(self.connections) + guard.lingering <= limits.max_connections + limits.max_lingering:
            self.connections.discard(self)
            Lingering(self.transport, guard)
        else:
            self.transport.close()


@final
class Lingering(asyncio.Protocol):
    """A refused connection's last moments: the answer is written and the write side shut;
    whatever the client still sends is read and dropped until it closes, or at most
    `linger_seconds`. Closing with unread data would reset the connection, and a reset can
    destroy the answer before the client reads it."""

    def __init__(self, transport: asyncio.Transport, guard: Guard) -> None:
        self.transport = transport
        self.guard = guard
        guard.lingering += 1
        transport.set_protocol(self)
        transport.write_eof()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(guard.limits.linger_seconds, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.lingering -= 1
        self._timer.cancel()
