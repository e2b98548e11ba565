"""Python's cyclic collector in a process that runs the engine's actors (the service, a shard
host, a gateway's replica): tuned for many long-lived objects and a flood of short-lived ones.
"""

from __future__ import annotations

import gc

# Young collections every 50,000 allocations rather than 700: a request allocates hundreds of
# objects that all die young, and each pass costs per surviving object (loadtests/results/
# http-profile.md: the collector took 23-44% of a hold load before this and the freeze below).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_long_lived() -> None:
    """Exempt what exists now (actors, seats, the recovered state) from future full collections.

    They live as long as the process; without this every generation-2 pass rescans them all
    and stalls the event loop for tens of milliseconds per 100,000 objects.
    """
    gc.collect()
    gc.freeze()
