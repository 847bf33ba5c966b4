"""The registry of replicas: who runs, where, which version; alive while its heartbeat is.

Each `cellect-monitor run` registers a row under a random id at start, beats every
round of its coordinator, and deletes the row when it stops gracefully. A replica is
live while its last heartbeat (the database's clock) is within the replica TTL; a
crashed one stops counting after that, and its row is forgotten much later. Nothing
here commits.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlmodel import Session

from receiver import __version__
from receiver.coordination import dbclock
from receiver.coordination.leases import notify
from receiver.storage.coordination_tables import Replica
from receiver.storage.dialect import insert_for

REPLICAS: Table = Replica.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ReplicaIdentity:
    """What a replica says about itself in the registry."""

    id: str
    host: str
    pid: int
    version: str
    schema_revision: str | None

    @classmethod
    def here(cls, schema_revision: str | None) -> ReplicaIdentity:
        """This process, under a new random id (a restart is a new replica)."""
        return cls(
            id=new_replica_id(),
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            schema_revision=schema_revision,
        )


def new_replica_id() -> str:
    """A random replica id: 12 hex digits, unique enough for the replicas of one database."""
    return "r-" + secrets.token_hex(6)


def _now(session: Session) -> Any:
    return dbclock.now(session.get_bind().dialect)


def register(*, session: Session, replica: ReplicaIdentity) -> None:
    """Add `replica` to the registry (started and beating now), and NOTIFY the others."""
    now = _now(session)
    values = {
        "id": replica.id,
        "host": replica.host[:255],
        "pid": replica.pid,
        "version": replica.version[:64],
        "schema_revision": replica.schema_revision,
        "started_at": now,
        "heartbeat_at": now,
    }
    stmt = insert_for(session, REPLICAS).values(values)
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
    notify(session=session, payload=replica.id)


def heartbeat(*, session: Session, replica_id: str) -> bool:
    """Record that `replica_id` is alive now; False if its row is gone (forgotten)."""
    stmt = update(REPLICAS).where(REPLICAS.c.id == replica_id).values(heartbeat_at=_now(session))
    return bool(session.execute(stmt.returning(REPLICAS.c.id)).first())


def deregister(*, session: Session, replica_id: str) -> None:
    """Remove `replica_id` from the registry (a graceful stop), and NOTIFY the others."""
    session.execute(delete(REPLICAS).where(REPLICAS.c.id == replica_id))
    notify(session=session, payload=replica_id)


def live_replicas(*, session: Session, ttl_s: float) -> list[Replica]:
    """The replicas whose heartbeat is within `ttl_s` seconds, by id (without this
    host's ended processes)."""
    since = dbclock.offset(session.get_bind().dialect, -ttl_s)
    query = select(Replica).where(REPLICAS.c.heartbeat_at > since).order_by(REPLICAS.c.id)
    return [r for r in session.scalars(query).all() if not ended_here(r)]


def ended_here(replica: Replica) -> bool:
    """A replica of this host whose process no longer exists: whatever its heartbeat
    says, it is not live (a monitor killed with -9 and started again at once must not be
    refused by its own ghost)."""
    if replica.host != socket.gethostname()[:255]:
        return False
    try:
        os.kill(replica.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user: alive
        return False
    return False


def ended_replicas(*, session: Session) -> list[str]:
    """The ids of this host's registered replicas whose process is gone (`ended_here`)."""
    host = socket.gethostname()[:255]
    query = select(Replica).where(REPLICAS.c.host == host)
    return [r.id for r in session.scalars(query).all() if ended_here(r)]


def forget_dead(*, session: Session, after_s: float) -> int:
    """Delete the rows of replicas silent for over `after_s` seconds; how many."""
    before = dbclock.offset(session.get_bind().dialect, -after_s)
    stmt = delete(REPLICAS).where(REPLICAS.c.heartbeat_at < before).returning(REPLICAS.c.id)
    return len(session.execute(stmt).all())
