"""A small client of the service for the API tests: users, admission, concerts, websockets.

Waiting is done by polling the API (or reading the websocket) until a state is reached, with
a generous timeout as a guard against hanging: nothing here asserts how long anything took.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.api.server import ADMIN_TOKEN

T = TypeVar("T")

GUARD_TIMEOUT = 20.0  # only so a broken server fails a test instead of hanging it


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `check` until it returns something truthy."""
    with anyio.move_on_after(GUARD_TIMEOUT):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


@dataclass(frozen=True)
class User:
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


class Target(Protocol):
    """Where requests go: a server, or one gateway of a cluster."""

    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


class Api:
    def __init__(self, server: Target, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.url = server.url

    # -- raw calls -----------------------------------------------------------------------------

    async def get(self, path: str, user: User | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", None) or (user.headers if user else {})
        return await self.http.get(self.url + path, headers=headers, **kw)

    async def post(
        self, path: str, body: Any = None, user: User | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {**(user.headers if user else {}), **kw.pop("headers", {})}
        if "content" in kw:
            return await self.http.post(self.url + path, headers=headers, **kw)
        return await self.http.post(self.url + path, json=body, headers=headers, **kw)

    async def delete(self, path: str, user: User) -> httpx.Response:
        return await self.http.delete(self.url + path, headers=user.headers)

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(
            method, self.url + path, json=body, headers=bearer(ADMIN_TOKEN)
        )
        assert response.status_code < 300, response.text
        return response.json()

    # -- the queue -----------------------------------------------------------------------------

    async def join(self, user_id: str) -> httpx.Response:
        return await self.post("/api/queue/tokens", {"userId": user_id})

    async def me(self, user: User) -> dict[str, Any]:
        response = await self.get("/api/queue/tokens/me", user)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def waiting_user(self, prefix: str = "user") -> User:
        response = await self.join(unique(prefix))
        assert response.status_code == 201, response.text
        body = response.json()
        return User(body["userId"], body["token"])

    async def admitted(self, prefix: str = "user") -> User:
        """A new user, joined and admitted (the queue admits every few milliseconds)."""
        user = await self.waiting_user(prefix)
        await self.until_status(user, "PROCESSING")
        return user

    async def admitted_many(self, count: int, prefix: str = "user") -> list[User]:
        """`count` new users, joined concurrently and admitted."""
        users: list[User] = []

        async def join() -> None:
            users.append(await self.waiting_user(prefix))

        async with self.paused_queue(), anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(join)
        await self.until_queue_empty()
        return users

    async def until_status(self, user: User, status: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            view = await self.me(user)
            return view if view["status"] == status else None

        return await eventually(reached, f"{user.user_id} becoming {status}")

    async def room(self) -> dict[str, Any]:
        actor = await self.admin("GET", "/admin/actors/waiting-room")
        state: dict[str, Any] = actor["state"]
        return state

    async def until_queue_empty(self) -> None:
        async def empty() -> bool:
            waiting: int = (await self.room())["waiting"]
            return waiting == 0

        await eventually(empty, "the queue emptying")

    @asynccontextmanager
    async def paused_queue(self) -> AsyncIterator[None]:
        await self.admin("POST", "/admin/queue/pause")
        try:
            yield
        finally:
            await self.admin("POST", "/admin/queue/resume")

    # -- catalog and seats ---------------------------------------------------------------------

    async def new_concert(
        self, *, dates: int = 1, seats: int = 50, price: int = 100
    ) -> tuple[str, list[str]]:
        """A concert of our own, so a test never competes for seats with another."""
        concert_id = unique("c")
        days = [f"2031-03-{day:02d}" for day in range(1, dates + 1)]
        await self.admin(
            "POST",
            "/admin/concerts",
            {
                "concertId": concert_id,
                "title": "Test concert",
                "dates": [{"date": d, "seats": seats, "price": price} for d in days],
            },
        )
        return concert_id, days

    async def hold(self, user: User, concert_id: str, date: str, seat: int) -> httpx.Response:
        return await self.post(
            "/api/reservations", {"concertId": concert_id, "date": date, "seat": seat}, user
        )

    async def charge(self, user: User, amount: int, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return await self.post("/api/balance/charge", {"amount": amount}, user, headers=headers)

    async def pay(self, user: User, *rids: str, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.post(
            "/api/payments", {"reservationIds": list(rids)}, user, headers=headers
        )

    async def balance(self, user: User) -> int:
        response = await self.get("/api/balance", user)
        assert response.status_code == 200, response.text
        value: int = response.json()["balance"]
        return value

    async def seat_status(self, concert_id: str, date: str, seat: int) -> dict[str, Any]:
        actor = await self.admin("GET", f"/admin/actors/date:{concert_id}:{date}")
        found: dict[str, Any] = actor["seats"][seat - 1]
        return found


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# -- websockets --------------------------------------------------------------------------------


@asynccontextmanager
async def websocket(
    server: Target, token: str | None, *, in_query: bool = False
) -> AsyncIterator[ClientConnection]:
    """A websocket with `token` offered as the page does (the subprotocol `token.<token>`
    beside `concert-queue`), or in the query string."""
    url = server.ws_url + (f"?token={token}" if token is not None and in_query else "")
    protocols = [Subprotocol("concert-queue")]
    if token is not None and not in_query:
        protocols.append(Subprotocol(f"token.{token}"))
    async with connect(
        url, subprotocols=protocols, open_timeout=GUARD_TIMEOUT, close_timeout=2
    ) as ws:
        yield ws


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    with anyio.fail_after(GUARD_TIMEOUT):
        raw = await ws.recv()
    message: dict[str, Any] = json.loads(raw)
    return message


async def message_of_type(ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    """The next message of type `kind` (and with `fields`), skipping any other."""
    while True:
        message = await next_message(ws)
        if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
            return message


async def subscribe(ws: ClientConnection, concert_id: str, date: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "concertId": concert_id, "date": date}))
    await message_of_type(ws, "subscribed", concertId=concert_id, date=date)
