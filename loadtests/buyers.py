"""Buyers that go through the whole flow over HTTP and keep a ledger of what they were told.

Each buyer, until told to stop, joins the waiting room, waits for admission, charges its
balance, holds seats and pays for them: every charge and payment with an Idempotency-Key. An
answer that settles nothing (503, a refused or broken connection, no answer within
`answer_timeout`) is retried, a write with the same key and body, until an answer does: the
contract says such a retry has the effect of one request. A buyer that was told to stop still
finishes the round it is in, so that once every buyer has returned nothing is in flight.

The `Ledger` keeps every request (how long it took, what came back), the charges and payments
acknowledged with a 2xx, and every answer the contract does not allow (`breaches`): a 503
without Retry-After, a payment's same-key retry refused, a write of ours refused for a reason
this load cannot cause. `loadtests.audit` checks the books against it.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from loadtests.service_client import DateOnSale

SETTLING = frozenset({"SEAT_TAKEN"})  # a same-key retry may meet its own payment still settling
POLL = 0.05  # seconds between two looks at the token while waiting for admission
RETRY_PAUSE = 0.2  # seconds before retrying after a refused or broken connection
MAX_RETRY_AFTER = 1.0  # cap on a 503's Retry-After, so a test's buyers keep probing
NO_ANSWER = 0  # the status recorded for a request that got no HTTP answer


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request: when it left (time.monotonic), how long it took, what came back."""

    route: str
    started: float
    seconds: float
    status: int  # NO_ANSWER: refused, reset, or `answer_timeout` passed
    outcome: str  # the error code, the transport error's name, or "ok"

    @property
    def timed_out(self) -> bool:
        return self.outcome.endswith("Timeout")  # httpx's ConnectTimeout, ReadTimeout, ...


@dataclass(slots=True)
class PaymentAttempt:
    """A payment as a buyer asked for it; `payment_id` once it was acknowledged (201)."""

    user_id: str
    token: str
    key: str
    reservation_ids: tuple[str, ...]
    payment_id: str | None = None
    outcome: str = "pending"  # "paid", an error code, or "pending" (never settled)


@dataclass
class Ledger:
    """What every buyer sent and was told."""

    exchanges: list[Exchange] = field(default_factory=list)
    charged: Counter[str] = field(default_factory=Counter)  # user -> acknowledged total
    unsettled_charges: Counter[str] = field(default_factory=Counter)  # sent, never acknowledged
    acknowledged_charges: int = 0
    payments: list[PaymentAttempt] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)  # route -> requests on their way
    # When each request still being retried was first sent (a request settles on its first
    # answer that is not a 503).
    settling: dict[int, float] = field(default_factory=dict)

    def retried_since(self, instant: float) -> int:
        """Requests first sent before `instant` that have not settled yet."""
        return sum(1 for started in self.settling.values() if started < instant)

    def acknowledged_payments(self) -> list[PaymentAttempt]:
        return [p for p in self.payments if p.payment_id is not None]

    def paid_tokens(self) -> list[str]:
        return sorted({p.token for p in self.acknowledged_payments()})

    def slower_than(self, seconds: float) -> list[Exchange]:
        """Requests answered after more than `seconds`, or not answered within the client's
        timeout (a hang as the client sees it)."""
        return [e for e in self.exchanges if e.seconds > seconds or e.timed_out]

    def summary(self) -> str:
        statuses = Counter(e.status for e in self.exchanges)
        shown = ", ".join(
            f"{'no answer' if s == NO_ANSWER else s}: {n}" for s, n in sorted(statuses.items())
        )
        slowest = max((e.seconds for e in self.exchanges), default=0.0)
        return (
            f"{len(self.exchanges)} requests ({shown}); slowest {slowest:.2f} s; acknowledged "
            f"{self.acknowledged_charges} charges, {len(self.acknowledged_payments())} payments "
            f"of {len(self.payments)} asked; client-side breaches: {len(self.breaches)}"
        )


@dataclass(frozen=True, slots=True)
class Shop:
    """Where and how the buyers shop."""

    base_url: str
    dates: Sequence[DateOnSale]
    seats_per_payment: int = 1
    answer_timeout: float = 10.0  # per request, as a browser's fetch would give up
    give_up_after: float = 120.0  # one step retried this long without settling: a breach

    @property
    def round_cost(self) -> int:
        """What a round charges: enough for its seats at the dearest date."""
        return self.seats_per_payment * max(d.price for d in self.dates)


class SeatPicker:
    """Hands out the seats of the dates, each once (seat 1 of every date, then seat 2, ...)."""

    def __init__(self, dates: Sequence[DateOnSale]) -> None:
        most = max((d.seats for d in dates), default=0)
        self._seats: Iterator[tuple[DateOnSale, int]] = iter(
            [(d, n) for n in range(1, most + 1) for d in dates if n <= d.seats]
        )

    def next(self) -> tuple[DateOnSale, int] | None:
        return next(self._seats, None)


class _Unsettled(Exception):
    """A step got no settling answer within `give_up_after` seconds."""


class Buyer:
    """One user shopping round after round; see the module docstring."""

    def __init__(
        self,
        user_id: str,
        client: httpx.AsyncClient,
        shop: Shop,
        seats: SeatPicker,
        ledger: Ledger,
    ) -> None:
        self.user_id = user_id
        self.client = client
        self.shop = shop
        self.seats = seats
        self.ledger = ledger
        self.token = ""

    async def shop_until(self, stop: anyio.Event) -> None:
        """Buy round after round until `stop` is set (the round under way is finished)."""
        for round_no in itertools.count():
            if stop.is_set():
                return
            try:
                if not await self.buy(round_no):
                    return  # sold out
            except _Unsettled as error:
                self.ledger.breaches.append(f"{self.user_id}: {error}")
                return

    async def buy(self, round_no: int) -> bool:
        """One round: join, admission, charge, hold, pay; False if no seat was left."""
        await self.join()
        await self.until_admitted()
        await self.charge(self.shop.round_cost, key=f"{self.user_id}-charge-{round_no}")
        held = await self.hold(self.shop.seats_per_payment)
        if not held:
            return False
        await self.pay(tuple(held), key=f"{self.user_id}-pay-{round_no}")
        return True

    # -- the steps -----------------------------------------------------------------------------

    async def join(self) -> None:
        answer, _ = await self.settled(
            "join", "POST", "/api/queue/tokens", {"userId": self.user_id}
        )
        if answer.status_code in (200, 201):
            self.token = answer.json()["token"]
        else:
            self.unexpected("join", answer)

    async def until_admitted(self) -> None:
        while True:
            answer, _ = await self.settled("token", "GET", "/api/queue/tokens/me")
            status = answer.json().get("status") if answer.status_code == 200 else None
            if status == "PROCESSING":
                return
            if status != "WAITING":
                self.unexpected("token", answer)
                await self.join()  # an expired or unknown token: queue again
            await anyio.sleep(POLL)

    async def charge(self, amount: int, *, key: str) -> None:
        self.ledger.unsettled_charges[self.user_id] += amount
        body = {"amount": amount}
        answer, _ = await self.settled("charge", "POST", "/api/balance/charge", body, key=key)
        if answer.status_code == 200:
            self.ledger.unsettled_charges[self.user_id] -= amount
            self.ledger.charged[self.user_id] += amount
            self.ledger.acknowledged_charges += 1
        else:
            self.unexpected("charge", answer)

    async def hold(self, count: int) -> list[str]:
        """Hold up to `count` seats (fewer if the dates sell out): their reservation ids."""
        held: list[str] = []
        while len(held) < count and (pick := self.seats.next()) is not None:
            date, seat = pick
            body = {"concertId": date.concert_id, "date": date.date, "seat": seat}
            answer, _ = await self.settled("hold", "POST", "/api/reservations", body)
            if answer.status_code in (200, 201):
                held.append(answer.json()["reservationId"])
            elif code_of(answer) != "SEAT_TAKEN":  # another buyer's seat: take the next one
                self.unexpected("hold", answer)
                break
        return held

    async def pay(self, reservation_ids: tuple[str, ...], *, key: str) -> None:
        attempt = PaymentAttempt(self.user_id, self.token, key, reservation_ids)
        self.ledger.payments.append(attempt)
        body = {"reservationIds": list(reservation_ids)}
        give_up = time.monotonic() + self.shop.give_up_after
        retried = False
        while True:
            answer, again = await self.settled("pay", "POST", "/api/payments", body, key=key)
            retried |= again
            code = code_of(answer)
            attempt.outcome = "paid" if answer.status_code == 201 else code
            if answer.status_code == 201:
                attempt.payment_id = answer.json()["paymentId"]
                return
            if not retried:
                self.unexpected("pay", answer)
                return
            # An earlier try of this key went unanswered, so its payment may have gone ahead:
            # the contract promises this retry that payment's answer, nothing else.
            self.ledger.breaches.append(
                f"{self.user_id}: a retry of payment {key} was answered "
                f"{answer.status_code} {code} (an earlier try had no answer or a 503)"
            )
            if code not in SETTLING or time.monotonic() > give_up:
                return
            await anyio.sleep(MAX_RETRY_AFTER)  # ask again once the first try has settled

    # -- requests ------------------------------------------------------------------------------

    async def settled(
        self,
        route: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
    ) -> tuple[httpx.Response, bool]:
        """The first answer that settles the request (anything but a 503 or no answer), and
        whether it took more than one try.

        Raises:
            _Unsettled: none came within `give_up_after` seconds.
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.monotonic()
        give_up = started + self.shop.give_up_after
        ticket = object()
        self.ledger.settling[id(ticket)] = started
        try:
            for tries in itertools.count(1):
                answer = await self.exchange(route, method, path, body, headers)
                if answer is not None and answer.status_code != 503:
                    return answer, tries > 1
                pause = RETRY_PAUSE if answer is None else self.retry_after(route, answer)
                if time.monotonic() + pause > give_up:
                    raise _Unsettled(f"{method} {path} unsettled after {self.shop.give_up_after} s")
                await anyio.sleep(pause)
        finally:
            del self.ledger.settling[id(ticket)]
        raise AssertionError("unreachable")

    async def exchange(
        self, route: str, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> httpx.Response | None:
        """Send one request and record it; None if no HTTP answer came."""
        started = time.monotonic()
        self.ledger.in_flight[route] += 1
        answer: httpx.Response | None = None
        try:
            answer = await self.client.request(
                method,
                self.shop.base_url + path,
                json=body,
                headers=headers,
                timeout=self.shop.answer_timeout,
            )
        except httpx.TransportError as error:
            outcome, status = type(error).__name__, NO_ANSWER
        else:
            outcome = "ok" if answer.status_code < 400 else code_of(answer)
            status = answer.status_code
        finally:
            self.ledger.in_flight[route] -= 1
        seconds = time.monotonic() - started
        self.ledger.exchanges.append(Exchange(route, started, seconds, status, outcome))
        return answer

    def retry_after(self, route: str, answer: httpx.Response) -> float:
        raw = answer.headers.get("Retry-After", "")
        if not raw.isdigit():
            self.ledger.breaches.append(f"{route}: a 503 without a valid Retry-After ({raw!r})")
            return RETRY_PAUSE
        return min(float(raw), MAX_RETRY_AFTER)

    def unexpected(self, route: str, answer: httpx.Response) -> None:
        self.ledger.breaches.append(
            f"{self.user_id}: {route} answered {answer.status_code} {code_of(answer)}"
        )


def code_of(answer: httpx.Response) -> str:
    """The contract's error code of an answer (its status as text if it has none)."""
    try:
        code = answer.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return str(answer.status_code)
    return str(code)


async def run_buyers(
    shop: Shop,
    user_ids: Sequence[str],
    ledger: Ledger,
    stop: anyio.Event,
    *,
    client: httpx.AsyncClient | None = None,
    seats: SeatPicker | None = None,
) -> None:
    """Every user shops until `stop` is set and has finished its round."""
    picker = seats or SeatPicker(shop.dates)
    async with _client(client) as http, anyio.create_task_group() as tg:
        for user_id in user_ids:
            tg.start_soon(Buyer(user_id, http, shop, picker, ledger).shop_until, stop)


@asynccontextmanager
async def _client(given: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The given client, or a fresh one closed afterwards."""
    if given is not None:
        yield given
        return
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits) as own:
        yield own


def overlapping(exchanges: Sequence[Exchange], start: float, end: float) -> list[Exchange]:
    """Requests on their way at some moment between `start` and `end` (time.monotonic)."""
    return [e for e in exchanges if e.started <= end and e.started + e.seconds >= start]
