"""This replica's presence in the registry: the start-up refusals, a heartbeat, a goodbye.

Every `cellect-monitor run` is a replica, on SQLite too (one replica there). Before it
migrates, `preflight` refuses to start beside live replicas of another schema revision
(a rolling upgrade that changes the schema stops every replica first) and, on SQLite,
beside any other live replica. After the migration, `Presence.start` checks again under
the database's write lock (SQLite) and registers; `run` beats every `beat_s` seconds;
`stop` deregisters (a graceful stop frees its place at once).

A replica is live while its heartbeat is within `ttl_s` (15 s, the database's clock) —
except a row of this host whose process no longer exists: a monitor killed with -9 and
started again at once is not refused by its own ghost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import anyio.to_thread
from sqlalchemy import Engine, inspect
from sqlmodel import Session

from receiver.coordination.guards import (
    check_schema_revision,
    code_revision,
    join,
    refuse_other_revisions,
    refuse_second_sqlite_replica,
)
from receiver.coordination.registry import ReplicaIdentity, deregister, heartbeat, register
from receiver.runtime import waiting
from receiver.storage.coordination_tables import Replica

log = logging.getLogger(__name__)

TTL_S = 15.0
BEAT_S = 5.0


def preflight(engine: Engine, ttl_s: float = TTL_S) -> None:
    """Before migrating: refuse to start beside the live replicas (if the database has a
    registry yet)."""
    if not inspect(engine).has_table(Replica.__tablename__):
        return
    with Session(engine) as session:
        refuse_second_sqlite_replica(session=session, me=None, ttl_s=ttl_s)
        refuse_other_revisions(session=session, me=None, revision=code_revision(), ttl_s=ttl_s)


class Presence:
    """This replica in the registry; see the module docstring."""

    def __init__(self, engine: Engine, *, ttl_s: float = TTL_S, beat_s: float = BEAT_S) -> None:
        self.engine, self.ttl_s, self.beat_s = engine, ttl_s, beat_s
        self.identity: ReplicaIdentity | None = None
        # Who this replica will be (made now: the webhook writer starts before the
        # registration and writes the replica's id into the fleet feed).
        self.planned = ReplicaIdentity.here(code_revision())

    def start(self) -> ReplicaIdentity:
        """Check the schema and the live replicas, then register (one transaction,
        under SQLite's write lock, so two replicas starting at once cannot both pass)."""
        revision = check_schema_revision(self.engine)
        identity = replace(self.planned, schema_revision=revision)
        with Session(self.engine) as session:
            join(session=session, replica=identity, ttl_s=self.ttl_s)
            refuse_other_revisions(
                session=session, me=identity.id, revision=revision, ttl_s=self.ttl_s
            )
            session.commit()
        self.identity = identity
        log.info("replica %s registered (schema %s)", identity.id, revision)
        return identity

    def beat(self) -> None:
        """One heartbeat; a row forgotten meanwhile (a long stall) is registered again."""
        assert self.identity is not None
        with Session(self.engine) as session:
            if not heartbeat(session=session, replica_id=self.identity.id):
                register(session=session, replica=self.identity)
            session.commit()

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every `beat_s` seconds (real time) until `stop`; a failed beat is logged."""
        while not stop.is_set():
            await waiting.pause(self.beat_s, stop)
            if stop.is_set():
                return
            try:
                await anyio.to_thread.run_sync(self.beat)
            except Exception as exc:  # the database away for a moment: beat again later
                log.warning("replica heartbeat failed: %s", type(exc).__name__)

    def stop(self) -> None:
        """Deregister (a graceful stop); never raises."""
        if self.identity is None:
            return
        try:
            with Session(self.engine) as session:
                deregister(session=session, replica_id=self.identity.id)
                session.commit()
        except Exception as exc:
            log.warning("could not deregister replica %s: %s", self.identity.id, exc)
        self.identity = None
