"""The engine's answers between processes: a value, or one of its errors, as plain values.

Commands and views cross as they are (frozen dataclasses, pickled). An error is turned into
`Failure` (its class, code, message, field, details and retry delay) and raised again on the
other side as the same class, so a gateway answers exactly as the shard's engine would have.

A frozen dataclass with slots pickles through dataclasses' `__getstate__`, which looks its
fields up again on every call; `register_reducers` gives each such class of the engine's face
a reducer that names them once (a third of the host's pickling time).
"""

from __future__ import annotations

import copyreg
import dataclasses
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from engine import catalog, commands, views
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
    details: tuple[tuple[str, str | int | float | None], ...] = ()


Answer = tuple[bool, Any]  # (True, value) or (False, Failure)


def failure_of(error: Exception) -> Failure:
    if isinstance(error, Refused):
        return Failure(
            "Refused", error.code, error.message, field=error.field, details=error.details
        )
    if isinstance(error, Overloaded):
        return Failure("Overloaded", error.code, error.message, retry_after=error.retry_after)
    if isinstance(error, EngineError):
        return Failure(type(error).__name__, error.code, error.message)
    return Failure("HandlerCrashed", "INTERNAL", f"{type(error).__name__}: {error}")


def error_of(failure: Failure) -> EngineError:
    if failure.kind == "Refused":
        return Refused(failure.code, failure.message, field=failure.field, details=failure.details)
    if failure.kind == "Overloaded":
        error = Overloaded("a shard", failure.retry_after or 1.0)
        error.message, error.args = failure.message, (failure.message,)
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


def _reducer(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    names = [field.name for field in dataclasses.fields(cls)]
    values = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda value: (cls, (values(value),))
    return lambda value: (cls, values(value))


def register_reducers(*modules: ModuleType) -> None:
    """A reducer for every dataclass defined in `modules` whose fields are all `__init__`'s."""
    for module in modules:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and dataclasses.fields(value)
                and all(field.init for field in dataclasses.fields(value))
            ):
                copyreg.pickle(value, _reducer(value))


register_reducers(commands, views, catalog, sys.modules[__name__])
