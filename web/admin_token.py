"""The admin token the service uses when `ADMIN_TOKEN` is unset: made once, kept beside the
local SQLite database in a file only its owner can read (`<database>.admin-token`, mode 0600),
and read again at the next start, so a dashboard left open keeps working across restarts.

A PostgreSQL database has no local file beside it: there the token is made at each start (and
printed), unless `ADMIN_TOKEN` is set, as for a cluster.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from persistence.database import normalize_url
from web.settings import Settings

SUFFIX = ".admin-token"


def token_file(database_url: str) -> Path | None:
    """Where the generated admin token of this database is kept: None unless it is a SQLite
    file (an in-memory database has no place beside it)."""
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database + SUFFIX)


def with_stable_admin_token(settings: Settings) -> Settings:
    """`settings` with the admin token kept for its database, when ADMIN_TOKEN is unset.

    Raises:
        OSError: the file exists but cannot be read, or cannot be written.
    """
    if not settings.admin_token_generated:
        return settings
    path = token_file(settings.database_url)
    if path is None:
        return settings
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(24)
        _write_private(path, token)
    return settings.replace(admin_token=token)


def _write_private(path: Path, token: str) -> None:
    # Created 0600 from the start (not chmod-ed after), so no one else can read it even once.
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
