"""Connecting to the database and keeping its schema current.

SQLite (the default, a file in the working directory) runs in WAL mode with `synchronous=FULL`
so a commit is on disk when it returns. PostgreSQL is reached through psycopg 3; a plain
`postgresql://` URL is mapped to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel, select

from persistence.tables import SCHEMA_VERSION, SchemaVersion

# libpq settings that bound how long a connection to an unreachable server can hang: a connect
# gives up after 3 s, and the kernel drops a connection whose sent data goes unacknowledged
# for 10 s or whose idle peer stops answering keepalives (a server or a path that vanished).
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class SchemaTooNew(RuntimeError):
    """The database was written by a newer version of the service: refuse to touch it."""


def normalize_url(url: str) -> str:
    """Map `postgresql://` and `postgres://` to the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connect(url: str) -> Engine:
    """An engine for `url`, with SQLite's durability settings applied to every connection."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            # Connections are used from worker threads and the journal writer's own thread.
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=4,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # No pre-ping: on a connection whose peer went silent it blocks with no deadline; a
        # dead pooled connection fails its first query instead, which invalidates the pool.
        return create_engine(parsed, pool_size=4, connect_args=POSTGRES_CONNECT_ARGS)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def ensure_schema(engine: Engine) -> int:
    """Create missing tables, record the schema version, and migrate an older one."""
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        found = session.exec(select(SchemaVersion.version)).all()
        current = max(found, default=0)
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database has schema version {current}; this build knows {SCHEMA_VERSION}"
            )
        # A fresh database was just built at the current version by `create_all`.
        first = current + 1 if current else SCHEMA_VERSION
        for version in range(first, SCHEMA_VERSION + 1):
            migrate(session, version)
            session.add(SchemaVersion(version=version, applied_at=datetime.now(UTC)))
        session.commit()
    return SCHEMA_VERSION


def migrate(session: Session, version: int) -> None:
    """Bring the schema to `version`. Versions 1 and 2 (which added `shard_lease`) are what
    `create_all` builds: nothing to do. Version 3 adds `concert.on_sale`."""
    if version in (1, 2):
        return
    if version == 3:
        connection = session.connection()
        # A fresh database has it from `create_all` already.
        if "on_sale" not in {c["name"] for c in inspect(connection).get_columns("concert")}:
            connection.execute(text("ALTER TABLE concert ADD COLUMN on_sale TEXT"))
        return
    raise AssertionError(f"no migration to schema version {version}")
