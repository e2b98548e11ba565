"""The base of every journaled event and its JSON codec.

Events are frozen dataclasses whose fields are JSON values (str, int, float, bool, None, or
tuples of those). Each subclass registers under its `kind`, so persistence can store
`(kind, payload)` and decode it back without knowing the domain.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

_REGISTRY: dict[str, type[Event]] = {}

E = TypeVar("E", bound="Event")


class Event:
    """Base of every event; subclasses are `@register`-ed frozen, slotted dataclasses."""

    __slots__ = ()
    kind: ClassVar[str] = "event"


def register(cls: type[E]) -> type[E]:
    """Make `cls` decodable from its `kind`."""
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise TypeError(f"event kind {cls.kind!r} is registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def to_payload(item: Event) -> dict[str, Any]:
    assert dataclasses.is_dataclass(item)
    return {
        f.name: list(value) if isinstance(value := getattr(item, f.name), tuple) else value
        for f in dataclasses.fields(item)
    }


def from_payload(kind: str, payload: dict[str, Any]) -> Event:
    try:
        cls = _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown event kind {kind!r}") from None
    values = {name: tuple(_tuples(v)) if isinstance(v, list) else v for name, v in payload.items()}
    return cls(**values)


def _tuples(items: list[Any]) -> list[Any]:
    return [tuple(_tuples(v)) if isinstance(v, list) else v for v in items]


def registered_kinds() -> dict[str, type[Event]]:
    return dict(_REGISTRY)
