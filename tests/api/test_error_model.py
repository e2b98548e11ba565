"""The mapping of engine outcomes to HTTP answers: a code's status, and never a false success."""

from __future__ import annotations

import json

import pytest

from engine.errors import (
    ActorUnavailable,
    EngineError,
    HandlerCrashed,
    JournalFailed,
    Overloaded,
    Refused,
)
from web.errors import response_for

CONTRACT_STATUSES = {
    "TOKEN_INVALID": 401,
    "QUEUE_WAITING": 403,
    "TOKEN_COMPLETED": 403,
    "TOKEN_EXPIRED": 403,
    "NOT_OWNER": 403,
    "TOKEN_LEFT": 403,
    "ROOM_NOT_OPEN": 403,
    "WRONG_ROOM": 403,
    "CHALLENGE_FAILED": 403,
    "NOT_FOUND": 404,
    "VALIDATION_ERROR": 422,
    "SEAT_TAKEN": 409,
    "HOLD_LIMIT": 409,
    "HOLD_EXPIRED": 409,
    "DATE_ON_SALE": 409,
    "ON_SALE_STARTED": 409,
    "INSUFFICIENT_BALANCE": 402,
    "BALANCE_LIMIT": 409,
}


def answer(error: Exception) -> tuple[int, str, dict[str, str]]:
    response = response_for(error)
    body = json.loads(bytes(response.body))
    return response.status_code, body["error"]["code"], dict(response.headers)


@pytest.mark.parametrize(("code", "status"), CONTRACT_STATUSES.items())
def test_every_refusal_code_has_its_contract_status(code: str, status: int) -> None:
    assert answer(Refused(code, "no"))[:2] == (status, code)


def test_a_room_not_open_tells_when_it_opens_as_an_instant() -> None:
    response = response_for(Refused("ROOM_NOT_OPEN", "not yet", details=(("opensAt", 1.5),)))
    body = json.loads(bytes(response.body))
    assert body["error"]["opensAt"] == "1970-01-01T00:00:01.500Z"


def test_a_full_mailbox_is_503_overloaded_with_a_whole_retry_after() -> None:
    status, code, headers = answer(Overloaded("date:x:2031-01-01", retry_after=0.25))
    assert (status, code, headers["retry-after"]) == (503, "OVERLOADED", "1")


@pytest.mark.parametrize(
    "error", [JournalFailed("disk full"), ActorUnavailable("date:x is rebuilding")]
)
def test_an_outcome_that_is_not_durable_is_503_unavailable(error: EngineError) -> None:
    status, code, headers = answer(error)
    assert (status, code, headers["retry-after"]) == (503, "UNAVAILABLE", "1")


@pytest.mark.parametrize("error", [HandlerCrashed("KeyError: 1"), RuntimeError("boom")])
def test_an_unexpected_failure_is_500_internal(error: Exception) -> None:
    assert answer(error)[:2] == (500, "INTERNAL")
