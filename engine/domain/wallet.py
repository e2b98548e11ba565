"""Balances of the users of one wallet shard: charges and debits, idempotent by key.

A balance never goes negative; a charge is a positive integer of at most `MAX_CHARGE`; a
balance never exceeds `MAX_BALANCE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from engine.domain.waiting_room import PROCESSING, refusal_for
from engine.errors import (
    BALANCE_LIMIT,
    IDEMPOTENCY_CONFLICT,
    INSUFFICIENT_BALANCE,
    VALIDATION_ERROR,
    Refused,
)
from engine.events import Event, register
from engine.snapshots import SnapshotFormat, columns, rows
from engine.views import Scalar, TokenStatus

MAX_CHARGE = 10**9
MAX_BALANCE = 10**12


@register
@dataclass(frozen=True, slots=True)
class Charged(Event):
    kind: ClassVar[str] = "wallet.charged"
    user_id: str
    amount: int
    key: str | None


@register
@dataclass(frozen=True, slots=True)
class Debited(Event):
    kind: ClassVar[str] = "wallet.debited"
    user_id: str
    amount: int
    payment_id: str


# Version 1: {"version": 1, "balances": {user: balance}, "charges": table of the charges made
# with an Idempotency-Key, "debits": table of the debits by payment, "totals": {charged,
# debited}}.
_CHARGE_COLUMNS = ("user_id", "key", "amount", "balance_after")
_DEBIT_COLUMNS = ("payment_id", "user_id", "amount")


def _upgrade_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 wrote charges, debits and totals as positional rows, their values in the
    order named here (that order is history)."""
    charged, debited = data["totals"]
    return {
        "balances": data["balances"],
        "charges": columns(data["charges"], ("user_id", "key", "amount", "balance_after")),
        "debits": columns(data["debits"], ("payment_id", "user_id", "amount")),
        "totals": {"charged": charged, "debited": debited},
    }


SNAPSHOT = SnapshotFormat("wallet", 1, {0: _upgrade_v0})


class Wallets:
    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.charges: dict[tuple[str, str], tuple[int, int]] = {}  # (user, key) -> amount, after
        self.debits: dict[str, tuple[str, int]] = {}  # payment id -> user, amount
        self.charged_total = 0
        self.debited_total = 0

    def balance(self, user_id: str) -> int:
        return self.balances.get(user_id, 0)

    def charge(
        self, user_id: str, amount: int, key: str | None, token_status: TokenStatus = PROCESSING
    ) -> tuple[list[Event], int]:
        """Events of a charge and the balance to report once they are applied.

        A charge retried with its key is answered from its record whatever the token's status
        now (the buyer may have paid since); a new charge needs a PROCESSING token.
        """
        if key is not None and (user_id, key) in self.charges:
            earlier_amount, balance_after = self.charges[(user_id, key)]
            if earlier_amount != amount:
                raise Refused(
                    IDEMPOTENCY_CONFLICT,
                    "this Idempotency-Key was used for a different amount",
                )
            return [], balance_after
        if token_status != PROCESSING:
            raise refusal_for(token_status)
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_CHARGE:
            raise Refused(VALIDATION_ERROR, f"amount must be an integer from 1 to {MAX_CHARGE}")
        after = self.balance(user_id) + amount
        if after > MAX_BALANCE:
            # A well-formed amount that this balance cannot take: a conflict with the state,
            # like a short balance, not bad input.
            raise Refused(BALANCE_LIMIT, f"a balance cannot exceed {MAX_BALANCE}")
        return [Charged(user_id, amount, key)], after

    def debit(self, user_id: str, amount: int, payment_id: str) -> list[Event]:
        if payment_id in self.debits:
            return []
        if amount < 0:
            raise Refused(VALIDATION_ERROR, "a debit cannot be negative")
        if self.balance(user_id) < amount:
            raise Refused(
                INSUFFICIENT_BALANCE,
                f"balance {self.balance(user_id)} is less than the {amount} due",
            )
        return [Debited(user_id, amount, payment_id)]

    def apply(self, event: Event) -> None:
        match event:
            case Charged(user_id=user, amount=amount, key=key):
                after = self.balance(user) + amount
                self.balances[user] = after
                if key is not None:
                    self.charges[(user, key)] = (amount, after)
                self.charged_total += amount
            case Debited(user_id=user, amount=amount, payment_id=pid):
                self.balances[user] = self.balance(user) - amount
                self.debits[pid] = (user, amount)
                self.debited_total += amount
            case _:
                raise TypeError(f"a wallet cannot apply {event!r}")

    def next_deadline(self) -> float | None:
        return None

    def to_snapshot(self) -> dict[str, Any]:
        return SNAPSHOT.write(
            balances=dict(self.balances),
            charges=columns(
                ((u, k, a, b) for (u, k), (a, b) in self.charges.items()), _CHARGE_COLUMNS
            ),
            debits=columns(((pid, u, a) for pid, (u, a) in self.debits.items()), _DEBIT_COLUMNS),
            totals={"charged": self.charged_total, "debited": self.debited_total},
        )

    def load_snapshot(self, data: dict[str, Any]) -> None:
        """Take the state of a snapshot of any version `SNAPSHOT` reads (raises
        `SnapshotRefused` for others)."""
        data = SNAPSHOT.read(data)
        self.balances = dict(data["balances"])
        self.charges = {(u, k): (a, b) for u, k, a, b in rows(data["charges"], _CHARGE_COLUMNS)}
        self.debits = {pid: (u, a) for pid, u, a in rows(data["debits"], _DEBIT_COLUMNS)}
        self.charged_total = data["totals"]["charged"]
        self.debited_total = data["totals"]["debited"]

    def summary(self) -> dict[str, Scalar]:
        return {
            "users": len(self.balances),
            "charged": self.charged_total,
            "debited": self.debited_total,
            "held": sum(self.balances.values()),
        }
