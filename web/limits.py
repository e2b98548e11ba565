"""How much of the server one client may take: head size, time to send a request, connections.

    limits = Limits.for_process(settings)   # after web.cli raised the open-files limit

A request head (request line and headers) may take `MAX_HEAD_BYTES`; a request must arrive,
head and body, within `head_timeout` seconds. Connections (HTTP and websocket alike, each a
file descriptor) are capped below the process's open-files limit, so that the server still has
descriptors to answer 503 with when it is full instead of failing to accept. web.protocol
enforces all three.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from web.settings import Settings

MAX_HEAD_BYTES = 16 * 1024

# Descriptors kept for everything but client connections: the database, the process's own
# files, and refused connections while their 503 is delivered.
RESERVED_FILES_MIN = 128
RESERVED_FILES_SHARE = 10  # a tenth of the limit when that is more

# A refused connection reads and drops what its client still sends for at most this long, so
# that closing it does not reset the connection before the client has read the refusal.
LINGER_SECONDS = 1.0

# After SIGTERM an idle connection stays open this long to answer 503 to a request already on
# its way, then it is closed.
STOPPING_GRACE_SECONDS = 2.0


def open_files_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limit(open_files: int) -> int:
    """How many connections to serve with `open_files` descriptors, keeping a reserve."""
    reserved = max(RESERVED_FILES_MIN, open_files // RESERVED_FILES_SHARE)
    return max(1, open_files - reserved)


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int
    # Refused connections that may linger at once; past that a refusal is closed at once.
    max_lingering: int
    head_timeout: float
    max_head_bytes: int = MAX_HEAD_BYTES
    linger_seconds: float = LINGER_SECONDS
    stopping_grace: float = STOPPING_GRACE_SECONDS

    @classmethod
    def for_process(cls, settings: Settings, open_files: int | None = None) -> Limits:
        """MAX_CONNECTIONS if set, else what `open_files` (default: RLIMIT_NOFILE) allows."""
        files = open_files_limit() if open_files is None else open_files
        connections = settings.max_connections or connection_limit(files)
        return cls(
            max_connections=connections,
            max_lingering=max(0, (files - connections) // 2),
            head_timeout=settings.header_timeout_seconds,
        )
