"""Exactly one owner per shard of the journal: leases with epochs, checked by every commit.

A process that serves a shard first takes its lease: a row of `shard_lease` whose `epoch` it
bumps. Every group commit then verifies, inside its own transaction, that the lease still has
that epoch; a process whose lease was taken since (a replacement started while it was paused,
say) commits nothing and acknowledges nothing, ever again (`Fenced`).

Two lease names cover every way to run:
- `engine`: the embedded single process, owner of every shard;
- `shard:<n>`: a cluster's shard host.
The embedded process refuses to start while another owner is alive (a live `engine` lease of
another process, or any live shard lease), and a shard host refuses while an embedded process
is alive, so the two never run beside each other. An owner is alive while it renews its lease
(every `RENEW_EVERY` seconds; `TTL` without renewal and it is presumed gone), except that a
previous owner on this machine whose process no longer exists is gone at once (a restart
after a crash takes over without waiting). A shard host takes its lease over from whoever
held it (`takeover`): the cluster's supervisor runs one host per shard, and the epoch fences
a zombie.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, text

TTL = timedelta(seconds=10)  # a lease not renewed for this long belongs to nobody alive
RENEW_EVERY = 3.0  # seconds between two renewals by its owner
ENGINE = "engine"


class LeaseHeld(RuntimeError):
    """Another live process owns what this one wants to serve."""


class Fenced(RuntimeError):
    """This process's lease was taken over: it must not commit (or answer) anything more."""


def shard_lease(shard: int) -> str:
    return f"shard:{shard}"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease held: its name, the epoch this process took, and who took it."""

    name: str
    epoch: int
    owner: str


def acquire(
    engine: Engine, name: str, *, mode: Literal["exclusive", "takeover"], owner: str | None = None
) -> Lease:
    """Take the lease `name` (bumping its epoch), or raise `LeaseHeld` naming who holds it."""
    owner = owner or this_process()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # two starting at once: one waits for the other
            conn.execute(text("LOCK TABLE shard_lease IN SHARE ROW EXCLUSIVE MODE"))
        rows = conn.execute(text("SELECT name, epoch, owner, renewed_at FROM shard_lease")).all()
        blocker = _blocker(rows, mode, owner, now)
        if blocker is not None:
            raise LeaseHeld(blocker)
        epochs = {n: e for n, e, _, _ in rows}
        epoch = epochs.get(name, 0) + 1
        statement = (
            "UPDATE shard_lease SET epoch = :epoch, owner = :owner, acquired_at = :now,"
            " renewed_at = :now WHERE name = :name"
            if name in epochs
            else "INSERT INTO shard_lease (name, epoch, owner, acquired_at, renewed_at)"
            " VALUES (:name, :epoch, :owner, :now, :now)"
        )
        conn.execute(text(statement), {"epoch": epoch, "owner": owner, "now": now, "name": name})
    return Lease(name, epoch, owner)


def blocker(engine: Engine, *, mode: Literal["exclusive", "takeover"]) -> str | None:
    """Why `acquire` would refuse now (who serves the database already), or None."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, epoch, owner, renewed_at FROM shard_lease")).all()
    return _blocker(rows, mode, this_process(), datetime.now(UTC))


def _blocker(
    rows: Sequence[Sequence[Any]],
    mode: Literal["exclusive", "takeover"],
    owner: str,
    now: datetime,
) -> str | None:
    for other, _, holder, renewed in rows:
        if holder == owner or not _alive(holder, renewed, now):
            continue
        if mode == "exclusive" or other == ENGINE:
            return (
                f"the lease {other} is held by {holder} (renewed {_instant(renewed)}): another "
                "instance serves this database; stop it first (two never run side by side)"
            )
    return None


def renew(engine: Engine, lease: Lease) -> None:
    """Say the owner is alive; raise `Fenced` if the lease was taken over meanwhile."""
    with engine.begin() as conn:
        renewed = conn.execute(
            text("UPDATE shard_lease SET renewed_at = :now WHERE name = :name AND epoch = :epoch"),
            {"now": datetime.now(UTC), "name": lease.name, "epoch": lease.epoch},
        ).rowcount
    if renewed != 1:
        raise Fenced(f"the lease {lease.name} was taken over by another instance")


def release(engine: Engine, lease: Lease) -> None:
    """Give the lease up on a clean stop, so that the next owner need not wait for its TTL."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE shard_lease SET renewed_at = :never WHERE name = :name AND epoch = :epoch"
            ),
            {"never": datetime(1970, 1, 1, tzinfo=UTC), "name": lease.name, "epoch": lease.epoch},
        )


def _alive(owner: str, renewed: datetime | str, now: datetime) -> bool:
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _process_exists(int(pid)):
        return False  # crashed on this machine: no need to wait for its lease to lapse
    return now - _instant(renewed) < TTL


def _instant(value: datetime | str) -> datetime:
    # SQLite hands timestamps back as text, and without the zone they were written with.
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
