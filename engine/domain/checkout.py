"""The record of payments of one checkout shard: started, completed or failed, and their keys.

The flow itself (lock -> debit -> sell) lives in the checkout actor; this state remembers
enough to answer a retried request with the same Idempotency-Key and to find, after a crash,
the payments that started and never finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from engine.errors import IDEMPOTENCY_CONFLICT, Refused
from engine.events import Event, register
from engine.snapshots import SnapshotFormat, columns, rows
from engine.views import PaymentStatus, PaymentView, Scalar

MAX_RESERVATIONS_PER_PAYMENT = 50


STARTED: Final = "STARTED"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"


@register
@dataclass(frozen=True, slots=True)
class CheckoutStarted(Event):
    kind: ClassVar[str] = "checkout.started"
    payment_id: str
    user_id: str
    reservation_ids: tuple[str, ...]
    key: str | None


@register
@dataclass(frozen=True, slots=True)
class CheckoutCompleted(Event):
    kind: ClassVar[str] = "checkout.completed"
    payment_id: str
    amount: int
    balance: int


@register
@dataclass(frozen=True, slots=True)
class CheckoutFailed(Event):
    kind: ClassVar[str] = "checkout.failed"
    payment_id: str
    code: str


@dataclass(slots=True)
class Payment:
    payment_id: str
    user_id: str
    reservation_ids: tuple[str, ...]
    key: str | None
    status: PaymentStatus = STARTED
    amount: int = 0
    balance: int = 0
    failure: str | None = None

    def view(self) -> PaymentView:
        return PaymentView(
            self.payment_id,
            self.user_id,
            self.status,
            self.amount,
            self.balance,
            self.reservation_ids,
            self.failure,
        )


# Version 1: {"version": 1, "payments": table of every payment, in the order they started}.
_PAYMENT_COLUMNS = (
    "payment_id",
    "user_id",
    "reservation_ids",
    "key",
    "status",
    "amount",
    "balance",
    "failure",
)


def _upgrade_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 wrote each payment as a positional row, its values in the order named here
    (that order is history)."""
    return {
        "payments": columns(
            data["payments"],
            (
                "payment_id",
                "user_id",
                "reservation_ids",
                "key",
                "status",
                "amount",
                "balance",
                "failure",
            ),
        )
    }


SNAPSHOT = SnapshotFormat("checkout", 1, {0: _upgrade_v0})


class Payments:
    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self.by_key: dict[tuple[str, str], str] = {}

    def for_key(
        self, user_id: str, key: str | None, reservation_ids: tuple[str, ...] | None = None
    ) -> Payment | None:
        """The payment made earlier with this Idempotency-Key (started or completed; a failed
        one took nothing and frees its key), if any. Given the reservations of a retry, a key
        that paid for others is refused with IDEMPOTENCY_CONFLICT."""
        if key is None:
            return None
        pid = self.by_key.get((user_id, key))
        payment = self.payments.get(pid) if pid else None
        if (
            payment is not None
            and reservation_ids is not None
            and set(reservation_ids) != set(payment.reservation_ids)
        ):
            raise Refused(
                IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used to pay other reservations"
            )
        return payment

    def counts(self) -> dict[PaymentStatus, int]:
        counts: dict[PaymentStatus, int] = {STARTED: 0, COMPLETED: 0, FAILED: 0}
        for payment in self.payments.values():
            counts[payment.status] += 1
        return counts

    @property
    def revenue(self) -> int:
        return sum(p.amount for p in self.payments.values() if p.status == COMPLETED)

    def unfinished(self) -> list[Payment]:
        return [p for p in self.payments.values() if p.status == STARTED]

    def apply(self, event: Event) -> None:
        match event:
            case CheckoutStarted(payment_id=pid, user_id=user, reservation_ids=rids, key=key):
                self.payments[pid] = Payment(pid, user, rids, key)
                if key is not None:
                    self.by_key[(user, key)] = pid
            case CheckoutCompleted(payment_id=pid, amount=amount, balance=balance):
                payment = self.payments[pid]
                payment.status, payment.amount, payment.balance = COMPLETED, amount, balance
            case CheckoutFailed(payment_id=pid, code=code):
                payment = self.payments[pid]
                payment.status, payment.failure = FAILED, code
                if payment.key is not None:
                    self.by_key.pop((payment.user_id, payment.key), None)
            case _:
                raise TypeError(f"checkout cannot apply {event!r}")

    def next_deadline(self) -> float | None:
        return None

    def to_snapshot(self) -> dict[str, Any]:
        return SNAPSHOT.write(
            payments=columns(
                (
                    (
                        p.payment_id,
                        p.user_id,
                        list(p.reservation_ids),
                        p.key,
                        p.status,
                        p.amount,
                        p.balance,
                        p.failure,
                    )
                    for p in self.payments.values()
                ),
                _PAYMENT_COLUMNS,
            )
        )

    def load_snapshot(self, data: dict[str, Any]) -> None:
        """Take the state of a snapshot of any version `SNAPSHOT` reads (raises
        `SnapshotRefused` for others)."""
        data = SNAPSHOT.read(data)
        self.payments = {}
        self.by_key = {}
        for pid, user, rids, key, status, amount, balance, failure in rows(
            data["payments"], _PAYMENT_COLUMNS
        ):
            self.payments[pid] = Payment(
                pid, user, tuple(rids), key, status, amount, balance, failure
            )
            if key is not None and status != FAILED:
                self.by_key[(user, key)] = pid

    def summary(self) -> dict[str, Scalar]:
        counts = self.counts()
        return {
            "started": counts[STARTED],
            "completed": counts[COMPLETED],
            "failed": counts[FAILED],
            "revenue": self.revenue,
        }
