"""The engine's commands in one line each, for tests that drive an engine in-process."""

from __future__ import annotations

from collections.abc import Sequence

from engine.commands import OpenRoom
from engine.face import (
    Charge,
    Engine,
    Hold,
    Join,
    Pay,
    PaymentResult,
    Release,
    Reservation,
    TokenStatus,
    TokenView,
)


async def join(engine: Engine, user: str) -> TokenView:
    return await engine.ask(Join(user))


async def hold(engine: Engine, user: str, concert_id: str, date: str, seat: int) -> Reservation:
    return (await engine.ask(Hold(user, concert_id, date, seat))).reservation


async def release(engine: Engine, user: str, reservation_id: str) -> None:
    await engine.ask(Release(user, reservation_id))


async def charge(
    engine: Engine,
    user: str,
    amount: int,
    key: str | None = None,
    status: TokenStatus = "PROCESSING",
) -> int:
    return await engine.ask(Charge(user, amount, key, status))


async def pay(
    engine: Engine,
    user: str,
    reservation_ids: Sequence[str],
    key: str | None = None,
    status: TokenStatus = "PROCESSING",
) -> PaymentResult:
    return await engine.ask(Pay(user, tuple(reservation_ids), key, status))


async def room_durable(engine: Engine) -> None:
    """Return once everything the waiting room did is durable (a no-op turn of it, answered
    only then): its admissions show at the token gate once they are."""
    await engine.ask(OpenRoom())
