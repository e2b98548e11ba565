"""The API's hand-made encodings say exactly what the pydantic models and datetime say."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from web.hub.ranks import rank_text
from web.schemas import QueueRankMessage, ReservationOut, instant


def iso_of(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
@example(1_900_000_000.9999996)  # rounds up into the next second
@example(1_900_000_000.0005)
@example(1_000_000_000.0000005)  # half a microsecond: rounds to even
@example(0.0)
def test_instant_is_datetimes_iso_8601_with_milliseconds(seconds: float) -> None:
    assert instant(seconds) == iso_of(seconds)


def test_instant_of_nothing_is_null() -> None:
    assert instant(None) is None


@given(
    seat=st.integers(1, 100_000),
    price=st.integers(0, 10**9),
    status=st.sampled_from(["HELD", "CHECKOUT", "SOLD"]),
    expires=st.one_of(st.none(), st.floats(0, 4e9).map(instant)),
    payment=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    concert=st.text(min_size=1, max_size=30),
)
def test_a_dumped_reservation_is_the_models_own_json(
    seat: int, price: int, status: str, expires: str | None, payment: str | None, concert: str
) -> None:
    values: dict[str, Any] = {
        "reservation_id": f"{concert}.2030-01-01.{seat}.1",
        "concert_id": concert,
        "date": "2030-01-01",
        "seat": seat,
        "status": status,
        "price": price,
        "expires_at": expires,
        "payment_id": payment,
    }
    assert ReservationOut.dump(values) == ReservationOut(**values).model_dump_json().encode()


@given(
    st.integers(min_value=1, max_value=10**7),
    st.none() | st.floats(min_value=0, max_value=1e7, allow_nan=False),
)
def test_the_hand_made_rank_message_is_the_models_json(rank: int, eta: float | None) -> None:
    made = json.loads(rank_text(rank, eta))
    assert made == json.loads(QueueRankMessage(rank=rank, eta_seconds=eta).model_dump_json())
