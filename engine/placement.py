"""Where each actor lives when the engine is spread over processes, and how to reach the rest.

The actors are cut into `shards`: an actor key belongs to shard `crc32(key) % shards` (a
stable hash: the same on every process and across restarts). The embedded engine is one shard
that owns everything. A shard's process builds only the actors it owns and reaches the others
through its `Peers`: by command, which is all the engine's face lets cross a process.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol, TypeVar

from engine.commands import Command

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Placement:
    shards: int = 1
    shard: int = 0  # the shard this process serves

    def shard_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.shards if self.shards > 1 else 0

    def owns(self, key: str) -> bool:
        return self.shard_of(key) == self.shard


EVERYTHING = Placement()


class Peers(Protocol):
    """The engine's other shards (the cluster provides them)."""

    async def ask(self, shard: int, command: Command[R]) -> R:
        """Run `command` on the shard that owns its actor; its durable answer, or the
        engine's errors (an unreachable shard is `ActorUnavailable`)."""
        ...

    async def release_holds(self, user_id: str) -> None:
        """Release the user's holds on every other shard's dates (best effort)."""
        ...
