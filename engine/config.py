"""Engine settings: the knobs of the configuration (docs/design.md) the actors use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EngineConfig:
    hold_seconds: float = 300.0
    admit_batch: int = 100
    admit_interval_seconds: float = 10.0
    max_active: int | None = None
    active_ttl_seconds: float = 600.0
    abandon_seconds: float = 300.0  # a waiting page unseen this long loses its place
    seats_per_date: int = 50
    max_holds_per_user: int = 4
    mailbox_size: int = 4096
    snapshot_every: int = 1_000  # events per actor between snapshots (more for large states)
    wallet_shards: int = 16
    checkout_shards: int = 16
    overload_retry_after: float = 1.0

    def actor_options(self) -> dict[str, Any]:
        """The runtime settings every actor takes (see engine.actor.Actor)."""
        return {
            "mailbox_size": self.mailbox_size,
            "snapshot_every": self.snapshot_every,
            "retry_after": self.overload_retry_after,
        }
