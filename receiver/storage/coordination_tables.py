"""SQLModel tables of replica coordination: the live replicas and the leases they hold.

Several `cellect-monitor run` on one PostgreSQL share the work through these two tables
(receiver.coordination). Every timestamp here is written by the database's own clock,
never the monitor's: leases are about real process liveness, and hosts' clocks differ.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlmodel import Field, SQLModel

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
