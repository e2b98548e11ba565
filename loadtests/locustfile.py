"""Locust users of an on-sale rush, a hot-seat fight and a queue flood.

    make loadtest                                      # a server on a temp database, then audit
    locust -f loadtests/locustfile.py --host URL       # by hand, against a running server

Users behave like browsers: they join the queue, wait on the websocket until `queue.admitted`,
list the dates, look at a seat map, hold a seat (front seats are hot: the choice is skewed),
then mostly charge and pay; some release the hold, some let it lapse (they wait for
`hold.expired` on the websocket) and try to pay anyway.

Contention is what a rush is about, so its outcomes are not failures: SEAT_TAKEN, HOLD_LIMIT,
HOLD_EXPIRED, OVERLOADED and SOLD_OUT (no date with a free seat) count as successes of the
request that met them and also appear as their own entries of type CONTENTION, one per code.
Anything else unexpected is a failure.

Environment: LOADTEST_CONCERT (concert to buy from; default: the first one listed),
LOADTEST_HOLD_SECONDS (the server's hold time: how long a user who lets a hold lapse waits),
LOADTEST_PAID_FILE (written at the end: the tokens that paid, for the audit).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import websocket
from locust import FastHttpUser, between, events, task
from locust.env import Environment

CONTENTION = "CONTENTION"
WS = "WS"
CONTENDED = frozenset({"SEAT_TAKEN", "HOLD_LIMIT", "HOLD_EXPIRED", "OVERLOADED"})
ADMISSION_TIMEOUT = 120.0
HOT_SEATS = (1, 2, 3)
SKEW = 1.2  # seat choice weight 1 / (position in the available list + 1) ** SKEW

paid_tokens: list[str] = []


@events.test_stop.add_listener  # type: ignore[untyped-decorator]  # Locust's is unannotated
def write_paid_tokens(environment: Environment, **_: Any) -> None:
    path = os.environ.get("LOADTEST_PAID_FILE")
    if path:
        with open(path, "w") as file:
            json.dump(paid_tokens, file)


def skewed_choice(seats: list[int]) -> int:
    """A seat from the available ones, the lower numbers (front rows) far more likely."""
    ordered = sorted(seats)
    weights = [1 / (position + 1) ** SKEW for position in range(len(ordered))]
    return random.choices(ordered, weights)[0]


REQUEST_TIMEOUT = 30.0  # seconds; an answer slower than this counts as a failure


class Refusal(Exception):
    """An answer other than the expected one; `code` is the contract's error code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


class Shopper(FastHttpUser):
    """What every user of the service does: a queue token, admission, API calls."""

    abstract = True
    wait_time = between(0.5, 2.0)
    prefix = "user"

    def on_start(self) -> None:
        self.token = ""
        self.user_id = ""
        self.ws: websocket.WebSocket | None = None
        self._concert = os.environ.get("LOADTEST_CONCERT", "")
        self.hold_seconds = float(os.environ.get("LOADTEST_HOLD_SECONDS", "300"))

    def on_stop(self) -> None:
        self.leave()

    def think(self) -> None:
        """A pause between two steps, as long as `wait_time` says (gevent-friendly)."""
        self.wait()  # type: ignore[no-untyped-call]  # Locust leaves User.wait unannotated

    # -- reporting -----------------------------------------------------------------------------

    def outcome(self, kind: str, name: str, started: float, error: str | None = None) -> None:
        """An entry of its own in Locust's statistics (contention codes, websocket waits)."""
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=Exception(error) if error else None,
            context={},
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        name: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON answer of a 2xx; `Refusal` for a contended or an unexpected answer (the
        latter also marked as a failure)."""
        started = time.perf_counter()
        all_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        all_headers |= headers or {}
        with self.client.request(
            method,
            path,
            json=body,
            headers=all_headers,
            name=name,
            catch_response=True,
            timeout=REQUEST_TIMEOUT,  # a stuck request must not keep the run from ending
        ) as response:
            status = response.status_code or 0
            try:
                answer = response.json() if response.text else None
            except ValueError:
                answer = None
            if 200 <= status < 300:
                response.success()
                return answer
            code = "NO_ANSWER"
            if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                code = str(answer["error"].get("code", code))
            if code in CONTENDED:
                response.success()
                self.outcome(CONTENTION, code, started)
                if code == "OVERLOADED":
                    time.sleep(float(response.headers.get("Retry-After") or 1))
            else:
                response.failure(f"{status} {code}")
            raise Refusal(status, code)

    # -- the queue -----------------------------------------------------------------------------

    def join(self) -> None:
        self.user_id = f"{self.prefix}-{uuid.uuid4().hex[:16]}"
        self.token = ""
        answer = self.call(
            "POST", "/api/queue/tokens", "/api/queue/tokens", {"userId": self.user_id}
        )
        self.token = answer["token"]

    def ws_url(self) -> str:
        base = (self.host or "").replace("https://", "wss://").replace("http://", "ws://")
        return f"{base}/ws?token={self.token}"

    def admitted(self) -> bool:
        """Join and wait on the websocket for `queue.admitted`, as the browser client does."""
        try:
            self.join()
        except Refusal:
            return False
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(self.ws_url(), timeout=ADMISSION_TIMEOUT)
            while True:
                message = self.receive(started + ADMISSION_TIMEOUT)
                if message.get("type") == "queue.admitted":
                    self.outcome(WS, "wait for queue.admitted", started)
                    return True
                if message.get("type") == "queue.rank":
                    self.outcome(WS, "queue.rank received", time.perf_counter())
                elif message.get("type") in ("queue.expired", "error"):
                    raise RuntimeError(f"unexpected {message}")
        except Exception as error:
            self.outcome(WS, "wait for queue.admitted", started, repr(error))
            self.leave()
            return False

    def receive(self, deadline: float) -> dict[str, Any]:
        assert self.ws is not None
        self.ws.settimeout(max(0.01, deadline - time.perf_counter()))
        message: dict[str, Any] = json.loads(self.ws.recv())
        return message

    def leave(self) -> None:
        """Close the tab: the next task starts over as a new user."""
        if self.ws is not None:
            with suppress(Exception):  # already closed by the server: nothing to do
                self.ws.close()
        self.ws = None
        self.token = ""

    @contextmanager
    def session(self) -> Iterator[bool]:
        """A token that is PROCESSING for the body (joining and waiting first if need be)."""
        if not self.token and not self.admitted():
            yield False
            return
        try:
            yield True
        except Refusal:
            self.leave()  # the journey ends on an answer it cannot go on from

    # -- shopping ------------------------------------------------------------------------------

    def concert(self) -> str:
        if not self._concert:
            concerts = self.call("GET", "/api/concerts", "/api/concerts")
            self._concert = concerts[0]["concertId"]
        return self._concert

    def dates(self) -> list[dict[str, Any]]:
        concert = self.concert()
        dates: list[dict[str, Any]] = self.call(
            "GET", f"/api/concerts/{concert}/dates", "/api/concerts/[id]/dates"
        )
        return dates

    def seat_map(self, date: str) -> dict[str, Any]:
        seats: dict[str, Any] = self.call(
            "GET",
            f"/api/concerts/{self.concert()}/dates/{date}/seats",
            "/api/concerts/[id]/dates/[date]/seats",
        )
        return seats

    def hold(self, date: str, seat: int) -> dict[str, Any]:
        body = {"concertId": self.concert(), "date": date, "seat": seat}
        held: dict[str, Any] = self.call("POST", "/api/reservations", "/api/reservations", body)
        return held

    def release(self, reservation_id: str) -> None:
        self.call("DELETE", f"/api/reservations/{reservation_id}", "/api/reservations/[id]")

    def pay(self, reservation_id: str, price: int) -> None:
        self.call(
            "POST",
            "/api/balance/charge",
            "/api/balance/charge",
            {"amount": price},
            {"Idempotency-Key": uuid.uuid4().hex},
        )
        self.call(
            "POST",
            "/api/payments",
            "/api/payments",
            {"reservationIds": [reservation_id]},
            {"Idempotency-Key": uuid.uuid4().hex},
        )
        paid_tokens.append(self.token)
        self.leave()  # the token is COMPLETED: a next purchase queues again

    def wait_for_expiry(self, reservation_id: str) -> None:
        """Leave the hold alone until the websocket says it lapsed."""
        started = time.perf_counter()
        deadline = started + self.hold_seconds + 30
        try:
            while True:
                message = self.receive(deadline)
                if (
                    message.get("type") == "hold.expired"
                    and message.get("reservationId") == reservation_id
                ):
                    self.outcome(WS, "wait for hold.expired", started)
                    return
        except Exception as error:
            self.outcome(WS, "wait for hold.expired", started, repr(error))


class RushBuyer(Shopper):
    """The on-sale rush: queue, pick a date and a (skewed) seat, then mostly buy it."""

    weight = 6
    prefix = "rush"
    release_share = 0.1
    expire_share = 0.1

    @task
    def buy_a_ticket(self) -> None:
        with self.session() as admitted:
            if not admitted:
                return
            dates = [d for d in self.dates() if d["availableSeats"] > 0]
            if not dates:
                self.outcome(CONTENTION, "SOLD_OUT", time.perf_counter())
                self.leave()
                return
            # Earlier dates sell first: the first listed are the most wanted.
            date = random.choices(dates, [1 / (i + 1) for i in range(len(dates))])[0]
            self.think()
            available = list(self.seat_map(date["date"])["available"])
            held = None
            for _ in range(3):
                if not available:
                    break
                seat = skewed_choice(available)
                try:
                    held = self.hold(date["date"], seat)
                    break
                except Refusal as refusal:
                    if refusal.code != "SEAT_TAKEN":
                        raise
                    available.remove(seat)
            if held is None:
                self.leave()
                return
            self.think()
            roll = random.random()
            if roll < self.release_share:
                self.release(held["reservationId"])
                self.leave()
            elif roll < self.release_share + self.expire_share:
                self.wait_for_expiry(held["reservationId"])
                self.pay(held["reservationId"], held["price"])  # refused: HOLD_EXPIRED
            else:
                self.pay(held["reservationId"], held["price"])


class HotSeatFan(Shopper):
    """Everyone wants the same three seats of the first date."""

    weight = 2
    prefix = "fan"

    @task
    def grab_a_hot_seat(self) -> None:
        with self.session() as admitted:
            if not admitted:
                return
            first = min(d["date"] for d in self.dates())
            try:
                held = self.hold(first, random.choice(HOT_SEATS))
            except Refusal as refusal:
                if refusal.code in ("SEAT_TAKEN", "HOLD_LIMIT"):
                    return  # counted as contention; keep the token and try again
                raise
            self.think()
            if random.random() < 0.5:
                self.pay(held["reservationId"], held["price"])
            else:
                self.release(held["reservationId"])


class QueueFlood(Shopper):
    """Many joins and rank polls: users (or bots) who queue and refresh, and never buy."""

    weight = 2
    prefix = "flood"
    wait_time = between(0.2, 1.0)

    @task
    def queue_and_refresh(self) -> None:
        try:
            self.join()
            for _ in range(3):
                self.think()
                self.call("GET", "/api/queue/tokens/me", "/api/queue/tokens/me")
        except Refusal:
            pass
        self.token = ""
