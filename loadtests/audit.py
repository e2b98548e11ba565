"""The audit after a load run, through the admin API: did the rush keep every promise?

- no seat sold twice: no seat in two completed payments, and a seat is SOLD exactly when a
  completed payment holds it (with that payment's id);
- sales x price = money taken: the sold seats priced by their date sum to the completed
  payments' amounts and to what the wallets were debited; charged = balances + debited;
- every token that paid is COMPLETED (asked with the token itself, as its owner would);
- no hold past its expiry, and no seat left locked for a checkout once the load is over.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

EXPIRY_GRACE = 1.0  # seconds a lapsed hold may take to be expired by its date's timer


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


def audit(base_url: str, admin_token: str, paid_tokens: list[str]) -> Audit:
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
    result.add(
        "no hold past its expiry",
        not overdue and locked == 0,
        f"{held} holds live, {len(overdue)} past expiry by > {EXPIRY_GRACE:g} s"
        + (f" (worst {max(overdue):.1f} s)" if overdue else "")
        + f"; seats still locked for a checkout: {locked}",
    )
    return result
