"""Guard rails a replica runs at start: the refusals that keep several replicas safe.

- SQLite means one replica: its writers share one file and it has no row locks, so a
  second live replica is refused, naming the one that runs (`refuse_second_sqlite_replica`).
- Code and database must be at the same schema revision (`check_schema_revision`), and
  so must the live replicas (`refuse_other_revisions`): a replica whose code predates or
  postdates the schema would read and write rows it does not understand.
"""

from __future__ import annotations

import functools

from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlmodel import Session

from receiver.coordination.errors import SchemaMismatch, SingleReplicaOnly
from receiver.coordination.registry import ReplicaIdentity, live_replicas, register
from receiver.storage.coordination_tables import Replica
from receiver.storage.engine import alembic_config, current_revision


@functools.cache
def code_revision() -> str | None:
    """The newest schema revision this code ships (its migrations' head; read once)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def describe(replica: Replica) -> str:
    """A replica as an operator can find it: id, host, pid, version, last heartbeat."""
    beat = replica.heartbeat_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"replica {replica.id} on host {replica.host} (pid {replica.pid}, "
        f"cellect-monitor {replica.version}, last heartbeat {beat})"
    )


def refuse_second_sqlite_replica(*, session: Session, me: str | None, ttl_s: float) -> None:
    """On SQLite, raise `SingleReplicaOnly` if a replica other than `me` is live."""
    if session.get_bind().dialect.name != "sqlite":
        return
    others = [r for r in live_replicas(session=session, ttl_s=ttl_s) if r.id != me]
    if others:
        raise SingleReplicaOnly(
            f"another cellect-monitor runs on this SQLite database: {describe(others[0])}. "
            "SQLite means one replica: stop the other one, or run every replica against "
            "one PostgreSQL (CELLECT_DATABASE_URL=postgresql://…). A replica that crashed "
            f"stops counting {ttl_s:g} s after its last heartbeat."
        )


def join(*, session: Session, replica: ReplicaIdentity, ttl_s: float) -> None:
    """Register `replica` in the session's transaction unless SQLite already has a live
    replica (`refuse_second_sqlite_replica`). On SQLite the write lock is taken first:
    of two replicas starting at once, the second sees the first registered."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    refuse_second_sqlite_replica(session=session, me=replica.id, ttl_s=ttl_s)
    register(session=session, replica=replica)


def check_schema_revision(engine: Engine, expected: str | None = None) -> str | None:
    """Raise `SchemaMismatch` unless the database is at `expected` (default: this code's
    head); returns the revision."""
    expected = expected if expected is not None else code_revision()
    found = current_revision(engine)
    if found == expected:
        return found
    if found is None:
        problem = "the database has no schema yet; run `cellect-monitor db upgrade`"
    elif found in _known_revisions():
        problem = "the database is older; run `cellect-monitor db upgrade` (stop old replicas)"
    else:
        problem = "a newer cellect-monitor migrated the database; run that version on every replica"
    raise SchemaMismatch(
        f"the database's schema is at revision {found}, this cellect-monitor expects "
        f"{expected}: {problem}"
    )


def refuse_other_revisions(
    *, session: Session, me: str | None, revision: str | None, ttl_s: float
) -> None:
    """Raise `SchemaMismatch` if a live replica other than `me` runs another revision."""
    for other in live_replicas(session=session, ttl_s=ttl_s):
        if other.id != me and other.schema_revision != revision:
            raise SchemaMismatch(
                f"{describe(other)} runs schema revision {other.schema_revision}, this "
                f"cellect-monitor {revision}: stop every replica before an upgrade that "
                "changes the schema, then start them all on the new version"
            )


def _known_revisions() -> set[str]:
    scripts = ScriptDirectory.from_config(alembic_config())
    return {script.revision for script in scripts.walk_revisions()}
