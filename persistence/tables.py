"""The SQLModel tables: the journal, snapshots, the catalog and the schema version.

`journal_event` is append-only: `seq` is the global order of commits, `(actor_key, actor_seq)` is
unique and indexed, which is how recovery reads one actor's tail after its snapshot. `snapshot`
keeps only the latest state of each actor (each new one replaces it, upserted in the group
commit that follows the records it covers); its `state` is the JSON of the actor's versioned
snapshot (`engine.snapshots`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Bump this and add a step to `database.migrate` when a table changes shape.
SCHEMA_VERSION = 3

# BIGINT on PostgreSQL; on SQLite the key must be spelled INTEGER to alias the rowid.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class JournalEvent(SQLModel, table=True):
    __tablename__ = "journal_event"
    __table_args__ = (UniqueConstraint("actor_key", "actor_seq", name="uq_journal_actor_seq"),)

    seq: int | None = Field(
        default=None, sa_column=Column(_BigId, primary_key=True, autoincrement=True)
    )
    actor_key: str = Field(max_length=200)
    actor_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=100)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SnapshotRow(SQLModel, table=True):
    __tablename__ = "snapshot"

    actor_key: str = Field(primary_key=True, max_length=200)
    actor_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    state: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ConcertRow(SQLModel, table=True):
    __tablename__ = "concert"

    concert_id: str = Field(primary_key=True, max_length=64)
    title: str
    venue: str = ""
    # The concert's own on-sale as first put on sale (JSON of `OnSale`'s fields; its room
    # journals every change after that); null: the site-wide room. Added in version 3.
    on_sale: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ConcertDateRow(SQLModel, table=True):
    __tablename__ = "concert_date"

    concert_id: str = Field(primary_key=True, foreign_key="concert.concert_id", max_length=64)
    date: str = Field(primary_key=True, max_length=10)  # ISO yyyy-mm-dd, as the engine keys it
    seats: int
    price: int


class ShardLease(SQLModel, table=True):
    """Who serves a shard of the journal, under which epoch (persistence/lease.py)."""

    __tablename__ = "shard_lease"

    name: str = Field(primary_key=True, max_length=64)  # "engine" or "shard:<n>"
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str = Field(max_length=300)
    acquired_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    renewed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)
    applied_at: datetime


journal_table = SQLModel.metadata.tables["journal_event"]
