"""One websocket connection: who it is, what it follows, and its bounded outbox and writer.

A slow client must not slow anyone: each connection has its own writer task and a bounded
outbox in which a message replaces an unsent one with the same key (a newer rank, a newer
status of the same seat). A client so far behind that the outbox still fills up is
disconnected (1013, try again later); reconnecting gives it a fresh state.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable

import anyio
from starlette.websockets import WebSocket

from engine.wakeup import wakeup_factory

log = logging.getLogger(__name__)

DateKey = tuple[str, str]  # concert id, date
# Who a token is: its number in the site-wide room, (concert id, number) in a concert's.
TokenKey = int | tuple[str, int]

OUTBOX_LIMIT = 2048  # pending messages per connection before it counts as hopelessly slow

GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class Connection:
    """One websocket: its identity, subscriptions, outbox and writer."""

    __slots__ = (
        "_close_code",
        "_limit",
        "_new_wakeup",
        "_outbox",
        "_wakeup",
        "dates",
        "last_eta",
        "last_eta_at",
        "last_rank",
        "scope",
        "seq",
        "user_id",
        "websocket",
    )

    def __init__(self, websocket: WebSocket, seq: TokenKey, user_id: str, limit: int) -> None:
        self.websocket = websocket
        self.seq = seq
        self.user_id = user_id
        self.dates: set[DateKey] = set()  # the dates it follows
        self.last_rank: int | None = None
        self.last_eta: float | None = None
        self.last_eta_at = 0.0
        self.scope: anyio.CancelScope | None = None
        self._limit = limit
        self._outbox: OrderedDict[Hashable, str] = OrderedDict()
        # A rank pass wakes every waiting client's writer: the cheapest one-shot wake-up.
        self._new_wakeup = wakeup_factory()
        self._wakeup = self._new_wakeup()
        self._close_code: int | None = None

    def push(self, key: Hashable, text: str) -> None:
        """Queue a message; one with the same key still unsent is replaced (coalescing)."""
        outbox = self._outbox
        if key not in outbox and len(outbox) >= self._limit:
            log.info("websocket of %s is too slow; disconnecting it", self.user_id)
            self.abort()
            return
        outbox[key] = text
        self._wakeup.set()

    def close(self, code: int) -> None:
        """Close as soon as the writer is free (pending messages are dropped)."""
        self._close_code = code
        self._wakeup.set()

    def abort(self) -> None:
        self._close_code = TRY_AGAIN_LATER
        self._outbox.clear()
        if self.scope is not None:
            self.scope.cancel()

    @property
    def aborted(self) -> bool:
        scope = self.scope
        return self._close_code == TRY_AGAIN_LATER and scope is not None and scope.cancel_called

    @property
    def pending(self) -> int:
        return len(self._outbox)

    async def write_loop(self) -> None:
        while True:
            if self._close_code is not None:
                await self.websocket.close(self._close_code)
                return
            if not self._outbox:
                self._wakeup = self._new_wakeup()
                await self._wakeup.wait()
                continue
            _, text = self._outbox.popitem(last=False)
            await self.websocket.send_text(text)
