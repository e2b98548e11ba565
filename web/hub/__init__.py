"""The websocket hub: one connection per browser, pushed queue, seat and hold events.

The parts, one job each:
- `connection`: one websocket's identity, bounded outbox and writer;
- `registry`: the open connections, indexed by token, user and followed date;
- `fanout`: committed engine events to the messages of the connections they concern;
- `ranks`: the rank pass (new ranks at most once a second);
- `warnings`: `hold.expiring` shortly before a connected holder's hold lapses;
- `Hub` (here): the `/ws` endpoint that authenticates, registers and serves a connection.

A client authenticates with its queue token, offered as a websocket subprotocol
`token.<token>` next to `concert-queue` (so the token is in no URL and no log), or, for
plain clients, as the `token` query parameter.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import anyio
from pydantic import ValidationError
from starlette.routing import websocket_session
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from engine.errors import NOT_FOUND, TOKEN_INVALID, VALIDATION_ERROR
from engine.face import Engine, TokenView
from web.body import validation_error
from web.errors import TOKEN_MISSING, UNAVAILABLE
from web.hub.connection import (
    GOING_AWAY,
    OUTBOX_LIMIT,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    Connection,
)
from web.hub.fanout import QUEUE_COMPLETED, QUEUE_EXPIRED, Fanout
from web.hub.ranks import RankPass
from web.hub.registry import Registry
from web.hub.sightings import Sightings
from web.hub.warnings import HoldWarnings
from web.schemas import (
    ErrorMessage,
    QueueAdmittedMessage,
    SubscribedMessage,
    SubscribeMessage,
    client_message,
    instant,
)

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 16  # dates one connection may follow
MAX_CLIENT_MESSAGE = 4096  # bytes
SUBPROTOCOL = "concert-queue"
TOKEN_PROTOCOL = "token."  # the subprotocol that carries the token: token.<token>

__all__ = ["GOING_AWAY", "SUBPROTOCOL", "Hub"]


class Hub:
    def __init__(self, hold_seconds: float, abandon_seconds: float = 300.0) -> None:
        self.registry = Registry()
        self.ranks = RankPass(self.registry)
        self.warnings = HoldWarnings(self.registry, hold_seconds)
        self.fanout = Fanout(self.registry, self.ranks, self.warnings)
        self.sightings = Sightings(self.registry, abandon_seconds)
        self.engine: Engine | None = None
        self.app: ASGIApp = websocket_session(self.serve)  # the `/ws` endpoint as an ASGI app

    def attach(self, engine: Engine) -> None:
        self.engine = self.ranks.engine = self.warnings.engine = self.sightings.engine = engine
        engine.subscribe(self.fanout.on_events)

    @property
    def count(self) -> int:
        return self.registry.count

    async def run(self) -> None:
        """The rank pass, the hold warnings and the sightings, until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.ranks.run)
            tg.start_soon(self.warnings.run)
            tg.start_soon(self.sightings.run)

    async def close_all(self, code: int = GOING_AWAY, wait: float = 2.0) -> None:
        """Close every websocket (on shutdown: 1001 going away) and wait until they are gone."""
        for conn in list(self.registry.connections):
            conn.close(code)
        with anyio.move_on_after(wait):
            while self.registry.connections:
                await anyio.sleep(0.02)

    # -- one connection ------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        """The `/ws` endpoint."""
        offered: list[str] = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        engine = self.engine
        if engine is None or not engine.ready:
            await _refuse(websocket, UNAVAILABLE, "the service is starting", TRY_AGAIN_LATER)
            return
        token = _token_of(websocket, offered)
        view = engine.token(token) if token else None
        if view is None:
            code = TOKEN_INVALID if token else TOKEN_MISSING
            await _refuse(websocket, code, "a valid queue token is required", POLICY_VIOLATION)
            return
        key = view.seq if view.concert_id is None else (view.concert_id, view.seq)
        conn = Connection(websocket, key, view.user_id, OUTBOX_LIMIT)
        self._add(engine, conn, view)
        try:
            async with anyio.create_task_group() as tg:
                conn.scope = tg.cancel_scope
                tg.start_soon(self._writer, conn, tg.cancel_scope)
                await self._read_loop(engine, conn)
                tg.cancel_scope.cancel()
        finally:
            self.registry.remove(conn)
        if conn.aborted:
            with anyio.move_on_after(1, shield=True), contextlib.suppress(Exception):
                await websocket.close(TRY_AGAIN_LATER)

    def _add(self, engine: Engine, conn: Connection, view: TokenView) -> None:
        registry = self.registry
        registry.add(conn)
        # The current state first, so a client needs no separate request to start.
        if view.status == "WAITING" and view.rank is not None:
            registry.waiting.add(conn.seq)
            self.ranks.note(conn, view.rank, view.eta_seconds, engine.now())
        elif view.status == "PRE_QUEUE":
            registry.waiting.add(conn.seq)  # ranked by the pass that follows the start
        elif view.status == "PROCESSING":
            text = QueueAdmittedMessage(active_until=instant(view.active_until)).model_dump_json()
            registry.send((conn,), text)
        elif view.status == "COMPLETED":
            registry.send((conn,), QUEUE_COMPLETED)
        elif view.status == "EXPIRED":
            registry.send((conn,), QUEUE_EXPIRED)

    async def _writer(self, conn: Connection, scope: anyio.CancelScope) -> None:
        # The client going away ends the writer; the reader notices it too.
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await conn.write_loop()
        scope.cancel()

    async def _read_loop(self, engine: Engine, conn: Connection) -> None:
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = message["bytes"].decode("utf-8", errors="replace")
            self.handle_client_message(engine, conn, raw or "")

    def handle_client_message(self, engine: Engine, conn: Connection, raw: str) -> None:
        """Apply a subscribe/unsubscribe; anything malformed gets an `error` event."""
        if len(raw) > MAX_CLIENT_MESSAGE:
            self._error(conn, VALIDATION_ERROR, f"messages are limited to {MAX_CLIENT_MESSAGE} B")
            return
        try:
            message = client_message.validate_json(raw)
        except ValidationError as invalid:
            self._error(conn, VALIDATION_ERROR, validation_error(invalid).message)
            return
        key = (message.concert_id, message.date)
        if not engine.has_date(*key):
            self._error(conn, NOT_FOUND, f"no date {message.date} for {message.concert_id}")
            return
        if isinstance(message, SubscribeMessage):
            if key not in conn.dates and len(conn.dates) >= MAX_SUBSCRIPTIONS:
                self._error(conn, VALIDATION_ERROR, f"at most {MAX_SUBSCRIPTIONS} subscriptions")
                return
            self.registry.follow(conn, key)
            kind: Literal["subscribed", "unsubscribed"] = "subscribed"
        else:
            self.registry.unfollow(conn, key)
            kind = "unsubscribed"
        reply = SubscribedMessage(type=kind, concert_id=message.concert_id, date=message.date)
        self.registry.send((conn,), reply.model_dump_json())

    def _error(self, conn: Connection, code: str, message: str) -> None:
        self.registry.send((conn,), ErrorMessage(code=code, message=message).model_dump_json())


def _token_of(websocket: WebSocket, offered: list[str]) -> str:
    for protocol in offered:
        if protocol.startswith(TOKEN_PROTOCOL):
            return protocol[len(TOKEN_PROTOCOL) :]
    return websocket.query_params.get("token", "")


async def _refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    await websocket.send_text(ErrorMessage(code=code, message=message).model_dump_json())
    await websocket.close(close_code)
