"""The service's settings, read from the environment (docs/design.md, "Configuration").

`Settings.from_env()` is what `make run`, the CLI and the tests use; the CLI then overrides
host, port and database URL from its flags. A bad value stops the start with a message naming
the variable rather than running with a surprise.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.config import EngineConfig
from engine.face import MAX_SEATS
from persistence import DEFAULT_URL

STATIC_DIR = Path(__file__).parent / "static"
CURRENCY_CODE = re.compile(r"[A-Z]{3}")

T = TypeVar("T", int, float)


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot run with."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_URL
    # HOLD_SECONDS, ADMIT_*, MAX_ACTIVE, ACTIVE_TTL_SECONDS, ABANDON_SECONDS, SEATS_PER_DATE,
    # MAX_HOLDS_PER_USER
    # and MAILBOX_SIZE (a tuning knob beyond the contract) are the engine's.
    engine: EngineConfig = field(default_factory=EngineConfig)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # True when ADMIN_TOKEN was unset and `admin_token` was generated (the CLI prints it).
    admin_token_generated: bool = True
    static_dir: Path = STATIC_DIR
    # MAX_CONNECTIONS (None: derived from the open-files limit, see web.limits) and
    # HEADER_TIMEOUT_SECONDS (a request's head, and body, must arrive within it).
    max_connections: int | None = None
    header_timeout_seconds: float = 10.0
    # CURRENCY: the ISO 4217 code of every price and balance (the engine counts whole units).
    currency: str = "EUR"
    # HISTORY_SAMPLE_SECONDS: between two samples of the dashboard's charts (web/history.py).
    history_sample_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        admin_token = env.get("ADMIN_TOKEN", "").strip()
        defaults, engine = cls(), EngineConfig()
        values: dict[str, Any] = {
            "host": env.get("HOST", "") or defaults.host,
            "port": _number(env, "PORT", int, defaults.port, low=1, high=65535),
            "database_url": env.get("DATABASE_URL", "") or defaults.database_url,
            "engine": EngineConfig(
                hold_seconds=_number(env, "HOLD_SECONDS", float, engine.hold_seconds, low=0.1),
                admit_batch=_number(env, "ADMIT_BATCH", int, engine.admit_batch, low=1),
                admit_interval_seconds=_number(
                    env, "ADMIT_INTERVAL_SECONDS", float, engine.admit_interval_seconds, low=0.01
                ),
                max_active=_optional_int(env, "MAX_ACTIVE"),
                active_ttl_seconds=_number(
                    env, "ACTIVE_TTL_SECONDS", float, engine.active_ttl_seconds, low=0.1
                ),
                abandon_seconds=_number(
                    env, "ABANDON_SECONDS", float, engine.abandon_seconds, low=0.1
                ),
                seats_per_date=_number(
                    env, "SEATS_PER_DATE", int, engine.seats_per_date, low=1, high=MAX_SEATS
                ),
                max_holds_per_user=_number(
                    env, "MAX_HOLDS_PER_USER", int, engine.max_holds_per_user, low=1
                ),
                mailbox_size=_number(env, "MAILBOX_SIZE", int, engine.mailbox_size, low=1),
            ),
            "max_connections": _optional_int(env, "MAX_CONNECTIONS"),
            "header_timeout_seconds": _number(env, "HEADER_TIMEOUT_SECONDS", float, 10.0, low=0.1),
            "currency": _currency(env, defaults.currency),
            "history_sample_seconds": _number(
                env, "HISTORY_SAMPLE_SECONDS", float, 5.0, low=0.1, high=600
            ),
        }
        if admin_token:
            values |= {"admin_token": admin_token, "admin_token_generated": False}
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _number(
    env: Mapping[str, str],
    name: str,
    kind: Callable[[str], T],
    default: T,
    *,
    low: float | None = None,
    high: float | None = None,
) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise SettingsError(f"{name}={raw!r} must be between {low} and {high or 'any'}")
    return value


def _currency(env: Mapping[str, str], default: str) -> str:
    raw = env.get("CURRENCY", "").strip()
    if not raw:
        return default
    if not CURRENCY_CODE.fullmatch(raw):
        raise SettingsError(f"CURRENCY={raw!r} must be a three-letter ISO 4217 code, e.g. EUR")
    return raw


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    return _number(env, name, int, 0, low=1)
