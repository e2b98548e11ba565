"""How much of a benchmark's time the cyclic garbage collector took, and its longest pause.

A Python service that allocates reference cycles per request pays for them in collector passes
that stop the event loop; this makes that cost visible next to each figure.
"""

from __future__ import annotations

import gc
import time
from types import TracebackType
from typing import Any


class GcMeter:
    """Use as `with GcMeter() as meter:`; then read `seconds`, `collections`, `longest`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self.longest = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.seconds += pause
        self.collections += 1
        self.longest = max(self.longest, pause)

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._callback)

    def describe(self, elapsed: float) -> str:
        share = 100 * self.seconds / elapsed if elapsed > 0 else 0.0
        return f"GC {share:.0f}% of the time, longest pause {self.longest * 1000:.0f} ms"

    def as_dict(self) -> dict[str, float]:
        return {
            "gc_seconds": round(self.seconds, 4),
            "gc_collections": self.collections,
            "gc_longest_ms": round(self.longest * 1000, 2),
        }
