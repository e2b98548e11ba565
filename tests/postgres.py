"""PostgreSQL for the tests: `DATABASE_URL_TEST`, skipped locally when unset, required in CI.

Each test that needs it takes a fresh schema (`fresh_postgres_schema`), dropped afterwards.
With `CI=true` a missing or unreachable database fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadtests import databases
from persistence.database import normalize_url


def postgres_base_url() -> str | None:
    """The PostgreSQL URL to test against; None means skip (never under CI)."""
    url = os.environ.get("DATABASE_URL_TEST")
    if url:
        return normalize_url(url)
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but DATABASE_URL_TEST is not set: the PostgreSQL tests must run")
    return None


@contextmanager
def fresh_postgres_schema(base: str) -> Iterator[str]:
    """Create a uniquely named schema, hand out a URL whose connections use it, drop it."""
    try:
        with databases.fresh_postgres_schema(base) as url:
            yield url
    except databases.DatabaseUnreachable as error:
        pytest.fail(str(error))
