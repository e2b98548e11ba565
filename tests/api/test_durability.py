"""Crashes and shutdowns of the real process: nothing acknowledged is ever lost.

SIGKILL gives the server no chance to flush: what survives is exactly what the journal had
committed, and every answer the server sent was sent after that commit. SIGTERM drains.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.api.client import Api, User, eventually, message_of_type, next_message, websocket
from tests.api.conftest import StartServer

pytestmark = pytest.mark.anyio

SHOPPERS = 8
PRICE = 10
CHARGE = 100
PAYMENTS_BEFORE_KILL = 20


@dataclass
class Ledger:
    """What one shopper was told: acknowledged charges and payments, and what was in flight."""

    charged: int = 0
    in_flight_charge: int = 0
    last_charge_key: str | None = None
    payments: list[tuple[str, int]] = field(default_factory=list)  # (payment id, seat)


async def rejoined(api: Api, user_id: str) -> User:
    response = await api.join(user_id)
    assert response.status_code in (200, 201), response.text
    user = User(user_id, response.json()["token"])
    await api.until_status(user, "PROCESSING")
    return user


async def shop(api: Api, user_id: str, concert_id: str, day: str, ledger: Ledger) -> None:
    """Charge, hold, pay, again and again (each payment completes the token: rejoin)."""
    seats = iter(range(1, 10_000))
    cycle = 0
    try:
        while True:
            user = await rejoined(api, user_id)
            key = f"{user_id}-charge-{cycle}"
            ledger.in_flight_charge = CHARGE
            charged = await api.charge(user, CHARGE, key=key)
            assert charged.status_code == 200, charged.text
            ledger.charged += CHARGE
            ledger.in_flight_charge = 0
            ledger.last_charge_key = key
            seat = next(seats)
            while (held := await api.hold(user, concert_id, day, seat)).status_code == 409:
                seat = next(seats)  # another shopper's seat
            assert held.status_code == 201, held.text
            paid = await api.pay(user, held.json()["reservationId"], key=f"{user_id}-pay-{cycle}")
            assert paid.status_code == 201, paid.text
            ledger.payments.append((paid.json()["paymentId"], seat))
            cycle += 1
    except httpx.TransportError:
        return  # the server was killed under us


async def test_sigkill_and_restart_keep_every_acknowledged_payment_and_charge(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    server = start_server({})
    api = Api(server, http)
    concert_id, (day,) = await api.new_concert(seats=2000, price=PRICE)
    ledgers = {f"shopper{n}": Ledger() for n in range(SHOPPERS)}

    async def enough_paid() -> bool:
        return sum(len(ledger.payments) for ledger in ledgers.values()) >= PAYMENTS_BEFORE_KILL

    async with anyio.create_task_group() as tg:
        for user_id, ledger in ledgers.items():
            tg.start_soon(shop, api, user_id, concert_id, day, ledger)
        await eventually(enough_paid, f"{PAYMENTS_BEFORE_KILL} payments")
        server.kill()

    server.start()
    for user_id, ledger in ledgers.items():
        user = await rejoined(api, user_id)
        balance = await api.balance(user)
        bought = {
            r["paymentId"]: r["seat"]
            for r in (await api.get("/api/reservations", user)).json()
            if r["status"] == "SOLD"
        }
        for payment_id, seat in ledger.payments:
            assert bought.get(payment_id) == seat, f"{user_id} lost payment {payment_id}"
        # No money without a seat, no seat without money, no acknowledged charge lost.
        durable_charges = balance + PRICE * len(bought)
        assert durable_charges in (ledger.charged, ledger.charged + ledger.in_flight_charge)
        if ledger.last_charge_key is not None:
            await api.charge(user, CHARGE, key=ledger.last_charge_key)
            assert await api.balance(user) == balance  # the key survived the crash too


async def test_sigterm_drains_closes_websockets_with_1001_and_keeps_everything(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    server = start_server({})
    api = Api(server, http)
    user = await api.admitted()
    await api.charge(user, 42, key="before-shutdown")
    assert server.process is not None
    async with websocket(server, user.token) as ws:
        await message_of_type(ws, "queue.admitted")
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            while True:
                await next_message(ws)
        assert ws.close_code == 1001
    status = await anyio.to_thread.run_sync(server.process.wait)
    assert status == 0, server.log()

    server.start()
    assert (await api.join(user.user_id)).json()["token"] == user.token
    assert await api.balance(user) == 42
