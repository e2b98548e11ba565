"""Snapshot fixtures of every released format, and how the snapshot tests compare states."""

from __future__ import annotations

from typing import Any

from engine.actor import DomainState

# Memoized reads a state recomputes on demand, and what a concert's room keeps in memory only
# (sightings, ETAs told, the next look for abandoned tokens): not part of what it holds.
_CACHES = (
    "_active_views",
    "_deadline",
    "_deadline_stale",
    "last_seen",
    "told_eta",
    "told_at",
    "next_sweep",
)


def structure(state: DomainState) -> dict[str, Any]:
    """Everything `state` holds, derived indexes included and caches left out, to compare two
    states for equality (Python's `==` on each attribute: sorted lists, deques, dataclasses)."""
    fields = {name: value for name, value in vars(state).items() if name not in _CACHES}
    fields["next_deadline()"] = state.next_deadline()
    return fields
