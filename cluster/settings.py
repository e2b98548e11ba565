"""Cluster mode's own settings, read from the environment beside the service's (web/settings.py).

`CLUSTER_SHARDS` (shard hosts, 2), `CLUSTER_GATEWAYS` (gateway processes, 2), `REDIS_URL`
(redis://127.0.0.1:6379/0), `RAY_ADDRESS` (join this Ray cluster; unset: start a local one).
Cluster mode runs on PostgreSQL only: `DATABASE_URL`, by default the local server's database
`concert_queue` (created if missing); SQLite is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cluster.bus import DEFAULT_URL as DEFAULT_REDIS_URL
from persistence.database import normalize_url
from web.settings import SettingsError

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/concert_queue"
NAMESPACE = "concert-queue"  # the Ray namespace of the hosts' names


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    shards: int = 2
    gateways: int = 2
    redis_url: str = DEFAULT_REDIS_URL
    ray_address: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClusterSettings:
        env = os.environ if environ is None else environ
        return cls(
            shards=_count(env, "CLUSTER_SHARDS", 2),
            gateways=_count(env, "CLUSTER_GATEWAYS", 2),
            redis_url=env.get("REDIS_URL", "") or DEFAULT_REDIS_URL,
            ray_address=env.get("RAY_ADDRESS") or None,
        )


def cluster_database_url(given: str | None) -> str:
    """The database of cluster mode: `given` (it must be PostgreSQL) or the default."""
    url = normalize_url(given) if given else DEFAULT_DATABASE_URL
    if not url.startswith("postgresql"):
        raise SettingsError(
            f"cluster mode needs PostgreSQL (DATABASE_URL={given!r}): several processes share "
            "one journal; start PostgreSQL and set DATABASE_URL=postgresql://... (the default "
            f"is {DEFAULT_DATABASE_URL})"
        )
    return url


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise SettingsError(f"{name}={raw!r} must be a whole number from 1 to 64")
    return int(raw)
