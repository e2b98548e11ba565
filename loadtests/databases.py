"""Scratch databases for load runs and tests: a SQLite file, or a fresh PostgreSQL schema.

A PostgreSQL run gets a uniquely named schema in the database at the given URL, selected for
every connection through the URL's `search_path` and dropped at the end, so runs (and the
engineers sharing one server) never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from persistence.database import normalize_url

DatabaseKind = Literal["sqlite", "postgresql"]
DATABASE_KINDS: tuple[DatabaseKind, ...] = ("sqlite", "postgresql")
LOCAL_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class DatabaseUnreachable(RuntimeError):
    """The PostgreSQL server at the base URL could not be reached (or refused the schema)."""


def postgres_url() -> str:
    """The PostgreSQL server to use: `DATABASE_URL_TEST`, else the local one CI uses."""
    return normalize_url(os.environ.get("DATABASE_URL_TEST") or LOCAL_POSTGRES_URL)


@contextmanager
def fresh_postgres_schema(base: str) -> Iterator[str]:
    """A URL to a new, empty schema of the database at `base`, dropped when the block ends.

    Raises:
        DatabaseUnreachable: the schema could not be created.
    """
    schema = f"test_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base))
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:
        admin.dispose()
        raise DatabaseUnreachable(f"PostgreSQL at {base} is unreachable: {error}") from error
    try:
        url = make_url(normalize_url(base)).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def scratch_database(kind: DatabaseKind, directory: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file in `directory`, or a fresh schema on
    `postgres_url()`."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'concert-queue.db'}"
        return
    with fresh_postgres_schema(postgres_url()) as url:
        yield url
