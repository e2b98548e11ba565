"""Snapshot formats: every state type writes `{"version": N, ...}` with named fields and reads
back the versions it knows, an older one upgraded one version at a time.

A collection is written as a table, one named column per field (`{"seq": [...], "user_id":
[...]}`), not as a list of positional rows: every value is named, and a waiting room of a
million users stays as compact and as quick to encode as with rows. A snapshot without a
version is version 0, the positional format of the releases before versions.

A snapshot this code cannot read (a newer release's version, or malformed) raises
`SnapshotRefused`; the actor then rebuilds from its events instead (`Actor.recover`), as the
journal keeps every event and a snapshot only shortens recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, final

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class SnapshotRefused(Exception):
    """A snapshot this code cannot read: a version it does not know, or malformed."""


@final
@dataclass(frozen=True, slots=True)
class SnapshotFormat:
    """The snapshot format of one state type: its version, and how older versions upgrade.

    `upgrades[v]` turns the fields of a version-`v` snapshot into those of version `v + 1`.
    """

    state_type: str
    version: int
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)

    def write(self, **fields: Any) -> dict[str, Any]:
        """A snapshot of the current version with these fields."""
        return {"version": self.version, **fields}

    def read(self, data: dict[str, Any]) -> dict[str, Any]:
        """The fields of `data` in the current version, upgraded if it is older.

        Raises:
            SnapshotRefused: a version that is newer, not a number, or has no upgrade path.
        """
        version = data.get("version", 0)
        if type(version) is not int or version > self.version:
            raise SnapshotRefused(
                f"{self.state_type} snapshot of version {version!r}; this release reads"
                f" versions up to {self.version}"
            )
        while version < self.version:
            upgrade = self.upgrades.get(version)
            if upgrade is None:
                raise SnapshotRefused(
                    f"{self.state_type} snapshot of version {version}; this release cannot"
                    f" upgrade it to version {self.version}"
                )
            data = upgrade(data)
            version += 1
        return data


def columns(rows: Iterable[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """`rows` as a table: one list per name, the i-th value of every row under the i-th name.

    Raises:
        ValueError: a row that has not one value per name.
    """
    table: dict[str, list[Any]] = {name: [] for name in names}
    lists = list(table.values())
    for row in rows:
        for column, value in zip(lists, row, strict=True):
            column.append(value)
    return table


def rows(table: Mapping[str, Sequence[Any]], names: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of a table written by `columns`, with the values in the order of `names`.

    Raises:
        KeyError: a column missing; ValueError (while iterating): columns of unequal length.
    """
    return zip(*(table[name] for name in names), strict=True)
