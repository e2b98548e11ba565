"""Wallet rules: idempotent charges and debits, bounds, never a negative balance."""

from __future__ import annotations

import pytest

from engine.domain.wallet import MAX_BALANCE, MAX_CHARGE, Wallets
from engine.errors import Refused
from engine.events import Event


def run(w: Wallets, events: list[Event]) -> None:
    for e in events:
        w.apply(e)


def test_charge_with_the_same_key_counts_once() -> None:
    w = Wallets()
    events, after = w.charge("ann", 50, "k")
    run(w, events)
    again, after_again = w.charge("ann", 50, "k")
    assert again == [] and after_again == after == 50
    assert w.balance("ann") == 50


def test_same_key_with_another_amount_is_refused() -> None:
    w = Wallets()
    run(w, w.charge("ann", 50, "k")[0])
    with pytest.raises(Refused):
        w.charge("ann", 60, "k")


@pytest.mark.parametrize("amount", [0, -1, MAX_CHARGE + 1, True, 1.5])
def test_amount_must_be_a_positive_bounded_integer(amount: object) -> None:
    with pytest.raises(Refused) as refused:
        Wallets().charge("ann", amount, None)  # type: ignore[arg-type]
    assert refused.value.code == "VALIDATION_ERROR"


def test_a_charge_past_the_largest_balance_is_a_conflict_and_changes_nothing() -> None:
    w = Wallets()
    for index in range(MAX_BALANCE // MAX_CHARGE):
        run(w, w.charge("ann", MAX_CHARGE, f"k{index}")[0])
    assert w.balance("ann") == MAX_BALANCE
    with pytest.raises(Refused) as refused:
        w.charge("ann", 1, "one-more")
    assert refused.value.code == "BALANCE_LIMIT"
    assert w.balance("ann") == MAX_BALANCE


def test_debit_beyond_the_balance_is_refused_and_changes_nothing() -> None:
    w = Wallets()
    run(w, w.charge("ann", 50, None)[0])
    with pytest.raises(Refused) as refused:
        w.debit("ann", 51, "p1")
    assert refused.value.code == "INSUFFICIENT_BALANCE"
    assert w.balance("ann") == 50


def test_debit_is_idempotent_by_payment() -> None:
    w = Wallets()
    run(w, w.charge("ann", 50, None)[0])
    run(w, w.debit("ann", 30, "p1"))
    assert w.debit("ann", 30, "p1") == []
    assert w.balance("ann") == 20
