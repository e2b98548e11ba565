"""What crosses between a gateway and a shard host: the engine's values, pickled with the
reducers of cluster/wire.py, come back equal; errors come back as the same class."""

from __future__ import annotations

import copyreg
import pickle

import pytest

from cluster.wire import Failure, error_of, failure_of, unwrap
from engine.catalog import ConcertDateInfo, ConcertInfo
from engine.commands import Charge, Hold, Join, Pay, Release
from engine.errors import ActorUnavailable, JournalFailed, Overloaded, Refused
from engine.views import HoldOutcome, Reservation, TokenView

VALUES = [
    Hold("ann", "aurora", "2027-01-15", 7),
    Release("ann", "r-1"),
    Charge("ann", 300, "topup-1"),
    Pay("ann", ("r-1", "r-2"), "pay-1"),
    Join("ann"),
    ConcertInfo("aurora", "Aurora", "Hall", (ConcertDateInfo("aurora", "2027-01-15", 50, 120),)),
    Failure("Refused", "SEAT_TAKEN", "seat 7 is held", field="seat"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: type(value).__name__)
def test_a_value_comes_back_equal(value: object) -> None:
    assert type(value) in copyreg.dispatch_table
    assert pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)) == value


def test_an_outcome_with_nested_values_comes_back_equal() -> None:
    reservation = Reservation(
        "r-1", "ann", "aurora", "2027-01-15", 7, "HELD", 120, 1_900_000_000.0, None
    )
    token = TokenView("1.abc", 1, "ann", "WAITING", 3, 12.5, None, new=True)
    for value in (HoldOutcome(reservation, True), token):
        assert pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)) == value


@pytest.mark.parametrize(
    "error",
    [
        Refused("SEAT_TAKEN", "seat 7 is held", field="seat"),
        Overloaded("date:aurora:2027-01-15", 2.0),
        ActorUnavailable("shard 1 is not reachable; retry"),
        JournalFailed("the database is down"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_error_is_raised_again_as_the_same_class(error: Exception) -> None:
    again = error_of(pickle.loads(pickle.dumps(failure_of(error))))
    assert type(again) is type(error)
    assert str(again) == str(error)
    with pytest.raises(type(error)):
        unwrap((False, failure_of(error)))
