"""The engine's answers between processes: a value, or one of its errors, as plain values.

Commands and views cross as they are (frozen dataclasses, picklable). An error is turned into
`Failure` (its class, code, message, field and retry delay) and raised again on the other side
as the same class, so a gateway answers exactly as the shard's engine would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import (
    ActorUnavailable,
    EngineError,
    HandlerCrashed,
    JournalFailed,
    Overloaded,
    Refused,
)


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    code: str
    message: str
    field: str | None = None
    retry_after: float | None = None


Answer = tuple[bool, Any]  # (True, value) or (False, Failure)


def failure_of(error: Exception) -> Failure:
    if isinstance(error, Refused):
        return Failure("Refused", error.code, error.message, field=error.field)
    if isinstance(error, Overloaded):
        return Failure("Overloaded", error.code, error.message, retry_after=error.retry_after)
    if isinstance(error, EngineError):
        return Failure(type(error).__name__, error.code, error.message)
    return Failure("HandlerCrashed", "INTERNAL", f"{type(error).__name__}: {error}")


def error_of(failure: Failure) -> EngineError:
    if failure.kind == "Refused":
        return Refused(failure.code, failure.message, field=failure.field)
    if failure.kind == "Overloaded":
        error = Overloaded("a shard", failure.retry_after or 1.0)
        error.message = failure.message
        return error
    if failure.kind == "JournalFailed":
        return JournalFailed(failure.message)
    if failure.kind == "ActorUnavailable":
        return ActorUnavailable(failure.message)
    return HandlerCrashed(failure.message)


def unwrap(answer: Answer) -> Any:
    """The value of an answer, or its error raised."""
    ok, value = answer
    if ok:
        return value
    raise error_of(value)
