"""SQLModel tables of replica coordination: the live replicas and the leases they hold.

Several `cellect-monitor run` on one PostgreSQL share the work through these two tables
(receiver.coordination). Every timestamp here is written by the database's own clock,
never the monitor's: leases are about real process liveness, and hosts' clocks differ.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlmodel import Field, SQLModel

from receiver.storage.tables import BigId
from receiver.storage.types import UtcDateTime


class Replica(SQLModel, table=True):
    """One running monitor process, alive while its heartbeat is recent."""

    __tablename__ = "replicas"
    id: str = Field(primary_key=True, sa_type=String(64))  # random, made at start
    host: str = Field(sa_type=String(255))
    pid: int
    version: str = Field(sa_type=String(64))  # of cellect-monitor
    schema_revision: str | None = Field(default=None, sa_type=String(32))  # its code's head
    started_at: datetime = Field(sa_type=UtcDateTime)
    heartbeat_at: datetime = Field(sa_type=UtcDateTime)


class Lease(SQLModel, table=True):
    """The right to do one share of the work (a bucket of sites, or a singleton job).

    `epoch` grows by one each time the lease changes hands; a write made under a lease
    checks it (receiver.coordination.leases.fence). No foreign key to `replicas`: the row
    of a crashed owner may be forgotten while its leases still name it.
    """

    __tablename__ = "leases"
    kind: str = Field(primary_key=True, sa_type=String(32))
    bucket: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    owner: str | None = Field(default=None, sa_type=String(64))
    epoch: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    acquired_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class FeedRow(SQLModel, table=True):
    """One change of the fleet picture a replica made, for the other replicas to apply
    (receiver.coordination.feed): written in the transaction of the change itself, read
    in commit order by `xid` (PostgreSQL's transaction id; on SQLite, with one replica,
    nothing is written here). Pruned after a while by retention."""

    __tablename__ = "fleet_feed"
    __table_args__ = (
        Index("ix_fleet_feed_xid_id", "xid", "id"),
        Index("ix_fleet_feed_at", "at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    xid: int | None = Field(default=None, sa_type=BigInteger)  # the writer's transaction
    replica: str = Field(sa_type=String(64))
    kind: str = Field(sa_type=String(16))
    body: str = Field(sa_type=Text)
    at: datetime | None = Field(default=None, sa_type=UtcDateTime)  # the database's clock
