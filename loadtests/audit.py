"""The audit after a load run, through the admin API: did the rush keep every promise?

- no seat sold twice: no seat in two completed payments, and a seat is SOLD exactly when a
  completed payment holds it (with that payment's id);
- sales x price = money taken: the sold seats priced by their date sum to the completed
  payments' amounts and to what the wallets were debited; charged = balances + debited;
- every token that paid is COMPLETED (asked with the token itself, as its owner would);
- no hold past its expiry, no seat left locked for a checkout and no payment left started
  once the load is over.

Given the buyers' `Ledger` (loadtests.buyers), it also checks what the clients were told:

- every acknowledged charge is in the books: a buyer's charges (its balance plus what its
  completed payments took) are at least what was acknowledged, and at most that plus the
  charges sent but never acknowledged;
- every acknowledged payment is COMPLETED, with the seats it named, each SOLD under its id;
- a payment's retry gets its outcome: the same request with the same Idempotency-Key answers
  201 with the payment's id for every payment of the ledger that completed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from loadtests.buyers import Ledger

EXPIRY_GRACE = 1.0  # seconds a lapsed hold may take to be expired by its date's timer
SETTLE_TIMEOUT = 30.0  # seconds to wait for the checkouts in flight to finish


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Audit:
    checks: list[Check] = field(default_factory=list)
    sold: int = 0
    revenue: int = 0
    payments: int = 0

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    @property
    def violations(self) -> int:
        return sum(not check.ok for check in self.checks)

    def lines(self) -> list[str]:
        """One line per check, for a report."""
        return [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]


def seat_of(reservation_id: str) -> tuple[str, str, int]:
    concert, date, seat, _ = reservation_id.split(".")
    return concert, date, int(seat)


def instant(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class AdminClient:
    def __init__(self, base_url: str, admin_token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
        )

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        response.raise_for_status()
        return response.json()


async def settle(base_url: str, admin_token: str, timeout: float = SETTLE_TIMEOUT) -> bool:
    """Wait until no payment is started and no seat is locked for a checkout (a payment left
    unconfirmed by a fault is settled a few seconds later); False if that takes `timeout`."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        with anyio.move_on_after(timeout):
            while True:
                try:
                    response = await client.get("/admin/actors")
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    totals = response.json()["totals"]
                    if totals["paymentsStarted"] == 0 and totals["checkout"] == 0:
                        return True
                await anyio.sleep(0.2)
    return False


def audit(
    base_url: str, admin_token: str, paid_tokens: list[str], ledger: Ledger | None = None
) -> Audit:
    admin = AdminClient(base_url, admin_token)
    listing = admin.get("/admin/actors")
    totals = listing["totals"]
    actors = listing["actors"]
    now = time.time()
    result = Audit()

    dates = [admin.get(f"/admin/actors/{a['key']}") for a in actors if a["kind"] == "date"]
    checkouts = [admin.get(f"/admin/actors/{a['key']}") for a in actors if a["kind"] == "checkout"]
    completed = [p for c in checkouts for p in c["payments"] if p["status"] == "COMPLETED"]
    result.payments = len(completed)

    # -- no seat sold twice ------------------------------------------------------------------
    paid_for: Counter[tuple[str, str, int]] = Counter()
    payment_of: dict[tuple[str, str, int], str] = {}
    for payment in completed:
        for rid in payment["reservationIds"]:
            paid_for[seat_of(rid)] += 1
            payment_of[seat_of(rid)] = payment["paymentId"]
    twice = [seat for seat, count in paid_for.items() if count > 1]
    sold_seats: dict[tuple[str, str, int], str | None] = {}
    for actor in dates:
        concert, date = actor["state"]["concertId"], actor["state"]["date"]
        for seat in actor["seats"]:
            if seat["status"] == "SOLD":
                sold_seats[(concert, date, seat["number"])] = seat["paymentId"]
    unpaid = [s for s, pid in sold_seats.items() if payment_of.get(s) != pid]
    not_sold = [s for s in paid_for if s not in sold_seats]
    result.sold = len(sold_seats)
    result.add(
        "no seat sold twice",
        not twice and not unpaid and not not_sold,
        f"{len(sold_seats)} seats sold by {len(completed)} payments; in two payments: "
        f"{len(twice)}, sold without its payment: {len(unpaid)}, paid but not sold: "
        f"{len(not_sold)}",
    )

    # -- sales x price = money taken ----------------------------------------------------------
    price = {(a["state"]["concertId"], a["state"]["date"]): a["state"]["price"] for a in dates}
    sales_value = sum(price[(c, d)] for c, d, _ in sold_seats)
    amounts = sum(p["amount"] for p in completed)
    result.revenue = amounts
    conserved = totals["charged"] == totals["balances"] + totals["debited"]
    result.add(
        "sales x price = money taken",
        sales_value == amounts == totals["debited"] == totals["revenue"] and conserved,
        f"seats sold x price {sales_value}, completed payments {amounts}, wallets debited "
        f"{totals['debited']}, revenue {totals['revenue']}; charged {totals['charged']} = "
        f"balances {totals['balances']} + debited {totals['debited']}: {conserved}",
    )

    # -- every paid token COMPLETED -----------------------------------------------------------
    statuses: Counter[str] = Counter()
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for token in paid_tokens:
            response = client.get(
                "/api/queue/tokens/me", headers={"Authorization": f"Bearer {token}"}
            )
            status = response.json().get("status") if response.status_code == 200 else None
            statuses[str(status or response.status_code)] += 1
    result.add(
        "every paid token COMPLETED",
        statuses["COMPLETED"] == len(paid_tokens) and len(paid_tokens) <= totals["completed"],
        f"{len(paid_tokens)} tokens paid: {dict(statuses) or 'none'}; "
        f"the room counts {totals['completed']} completed",
    )

    # -- no hold past its expiry -------------------------------------------------------------
    overdue = []
    locked = 0
    for actor in dates:
        for seat in actor["seats"]:
            if seat["status"] == "HELD" and seat["expiresAt"]:
                late = now - instant(seat["expiresAt"])
                if late > EXPIRY_GRACE:
                    overdue.append(late)
            locked += seat["status"] == "CHECKOUT"
    held = sum(1 for a in dates for s in a["seats"] if s["status"] == "HELD")
    started = totals["paymentsStarted"]
    result.add(
        "no hold past its expiry",
        not overdue and locked == 0 and started == 0,
        f"{held} holds live, {len(overdue)} past expiry by > {EXPIRY_GRACE:g} s"
        + (f" (worst {max(overdue):.1f} s)" if overdue else "")
        + f"; seats still locked for a checkout: {locked}; payments still started: {started}",
    )

    if ledger is not None:
        wallets = [admin.get(f"/admin/actors/{a['key']}") for a in actors if a["kind"] == "wallet"]
        balances = {user: b for wallet in wallets for user, b in wallet["balances"].items()}
        check_ledger(result, base_url, ledger, completed, sold_seats, balances)
    return result


def check_ledger(
    result: Audit,
    base_url: str,
    ledger: Ledger,
    completed: list[dict[str, Any]],
    sold_seats: dict[tuple[str, str, int], str | None],
    balances: dict[str, int],
) -> None:
    """The checks of what the buyers were told (see the module docstring)."""
    spent: Counter[str] = Counter()
    for payment in completed:
        spent[payment["userId"]] += payment["amount"]
    users = set(ledger.charged) | set(ledger.unsettled_charges)
    short, over = [], []
    for user in sorted(users):
        durable = balances.get(user, 0) + spent[user]
        if durable < ledger.charged[user]:
            short.append(f"{user} {durable} < {ledger.charged[user]}")
        elif durable > ledger.charged[user] + ledger.unsettled_charges[user]:
            over.append(f"{user} {durable} > {ledger.charged[user]} + unacknowledged")
    result.add(
        "every acknowledged charge kept",
        not short and not over,
        f"{ledger.acknowledged_charges} charges of {len(users)} buyers acknowledged; "
        f"buyers short of what they were told: {short or 'none'}; charged more than they "
        f"asked: {over or 'none'}",
    )

    by_id = {p["paymentId"]: p for p in completed}
    lost = []
    acknowledged = ledger.acknowledged_payments()
    for attempt in acknowledged:
        found = by_id.get(attempt.payment_id or "")
        seats = [seat_of(rid) for rid in attempt.reservation_ids]
        kept = (
            found is not None
            and set(found["reservationIds"]) == set(attempt.reservation_ids)
            and all(sold_seats.get(seat) == attempt.payment_id for seat in seats)
        )
        if not kept:
            lost.append(f"{attempt.payment_id} ({attempt.key})")
    result.add(
        "every acknowledged payment kept",
        not lost,
        f"{len(acknowledged)} payments acknowledged; not COMPLETED with their seats SOLD: "
        f"{lost or 'none'}",
    )

    of_request = {(p["userId"], frozenset(p["reservationIds"])): p for p in completed}
    replayed, wrong = 0, []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for attempt in ledger.payments:
            done = of_request.get((attempt.user_id, frozenset(attempt.reservation_ids)))
            if done is None:
                continue  # it did not complete: a retry now would be a new payment
            response = client.post(
                "/api/payments",
                json={"reservationIds": list(attempt.reservation_ids)},
                headers={
                    "Authorization": f"Bearer {attempt.token}",
                    "Idempotency-Key": attempt.key,
                },
            )
            replayed += 1
            answered = response.json().get("paymentId") if response.status_code == 201 else None
            if answered != done["paymentId"]:
                wrong.append(
                    f"{attempt.key}: {response.status_code} {answered or response.text[:80]} "
                    f"for {done['paymentId']}"
                )
    result.add(
        "a payment's retry gets its outcome",
        not wrong,
        f"{replayed} completed payments asked again with their key; other answers: "
        f"{wrong or 'none'}",
    )
