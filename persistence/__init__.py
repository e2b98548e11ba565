"""Persistence: SQLModel tables, the group-commit SQL journal, snapshots, recovery, catalog."""

from persistence.journal import SqlJournal
from persistence.store import DEFAULT_URL, Store, open_store

__all__ = ["DEFAULT_URL", "SqlJournal", "Store", "open_store"]
