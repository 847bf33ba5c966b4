"""The registry of replicas and the guard rails a replica runs at start."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import Session

from receiver.coordination import registry
from receiver.coordination.errors import SchemaMismatch, SingleReplicaOnly
from receiver.coordination.guards import (
    check_schema_revision,
    code_revision,
    refuse_other_revisions,
    refuse_second_sqlite_replica,
)
from receiver.coordination.registry import ReplicaIdentity
from receiver.storage.engine import alembic_config, create_engine_for, session_factory, upgrade

HEAD = code_revision()


def _register(engine: Engine, replica: ReplicaIdentity) -> None:
    with session_factory(engine)() as session:
        registry.register(session=session, replica=replica)
        session.commit()


def _live(engine: Engine, ttl_s: float = 15.0) -> list[str]:
    with session_factory(engine)() as session:
        return [r.id for r in registry.live_replicas(session=session, ttl_s=ttl_s)]


def _session(engine: Engine) -> Session:
    return session_factory(engine)()


def test_the_registry_knows_who_is_live(engine: Engine) -> None:
    """Registered replicas are live while they beat; a deregistered one is gone at once,
    a silent one once its TTL has passed (the database's clock), and is forgotten later."""
    a, b = ReplicaIdentity.here(HEAD), ReplicaIdentity.here(HEAD)
    _register(engine, a)
    _register(engine, b)
    assert _live(engine) == sorted([a.id, b.id])
    with _session(engine) as session:
        assert registry.heartbeat(session=session, replica_id=a.id)
        assert not registry.heartbeat(session=session, replica_id="r-unknown")
        registry.deregister(session=session, replica_id=b.id)
        session.commit()
    assert _live(engine) == [a.id]
    deadline = time.monotonic() + 5
    while _live(engine, ttl_s=0.3):
        assert time.monotonic() < deadline, "a silent replica stayed live"
        time.sleep(0.05)
    with _session(engine) as session:
        assert registry.forget_dead(session=session, after_s=0.3) == 1
        session.commit()
    assert _live(engine) == []


def test_sqlite_refuses_a_second_live_replica_naming_it(sqlite_url: str) -> None:
    """On SQLite, with a replica live, another one is refused with a message naming the
    live one (id, host, pid, last heartbeat) and saying SQLite means one replica; the
    live one itself passes, and once it has left the next one may start."""
    upgrade(sqlite_url)
    engine = create_engine_for(sqlite_url)
    running = ReplicaIdentity("r-running", "host-a", 4242, "0.1.0", HEAD)
    try:
        _register(engine, running)
        with _session(engine) as session:
            with pytest.raises(SingleReplicaOnly) as refused:
                refuse_second_sqlite_replica(session=session, me="r-second", ttl_s=15)
            refuse_second_sqlite_replica(session=session, me="r-running", ttl_s=15)
        message = str(refused.value)
        for part in ("r-running", "host-a", "pid 4242", "last heartbeat 20", "SQLite means one"):
            assert part in message
        with _session(engine) as session:
            registry.deregister(session=session, replica_id="r-running")
            session.commit()
            refuse_second_sqlite_replica(session=session, me="r-second", ttl_s=15)
    finally:
        engine.dispose()


def test_sqlite_does_not_count_a_replica_silent_past_its_ttl(sqlite_url: str) -> None:
    """A replica that crashed (its row left, no heartbeat) stops blocking a new one on
    SQLite once the replica TTL has passed."""
    upgrade(sqlite_url)
    engine = create_engine_for(sqlite_url)
    try:
        _register(engine, ReplicaIdentity.here(HEAD))
        deadline = time.monotonic() + 5
        while True:
            with _session(engine) as session:
                try:
                    refuse_second_sqlite_replica(session=session, me="r-new", ttl_s=0.3)
                    break
                except SingleReplicaOnly:
                    assert time.monotonic() < deadline, "the crashed replica kept counting"
            time.sleep(0.05)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_allows_several_live_replicas(postgres_url: str) -> None:
    """The SQLite guard does nothing on PostgreSQL: several replicas are the point."""
    upgrade(postgres_url)
    engine = create_engine_for(postgres_url)
    try:
        _register(engine, ReplicaIdentity.here(HEAD))
        with _session(engine) as session:
            refuse_second_sqlite_replica(session=session, me="r-other", ttl_s=15)
    finally:
        engine.dispose()


def _downgrade(engine: Engine, to: str) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, to)


def test_a_database_at_another_schema_revision_is_refused(database_url: str) -> None:
    """The schema guard passes at this code's head, and refuses, saying what to do, a
    database without a schema, an older one, and one a newer version migrated."""
    engine = create_engine_for(database_url)
    try:
        with pytest.raises(SchemaMismatch, match=r"no schema yet.*db upgrade"):
            check_schema_revision(engine)
        upgrade(engine)
        assert check_schema_revision(engine) == HEAD
        _downgrade(engine, "0003")
        with pytest.raises(SchemaMismatch, match=rf"at revision 0003.*expects {HEAD}.*older"):
            check_schema_revision(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        with pytest.raises(SchemaMismatch, match=r"at revision 0999.*newer cellect-monitor"):
            check_schema_revision(engine)
    finally:
        engine.dispose()


def test_a_live_replica_at_another_revision_is_refused(engine: Engine) -> None:
    """A replica refuses to run beside a live one whose code has another schema revision,
    naming it; beside one at the same revision it runs."""
    same = ReplicaIdentity.here(HEAD)
    _register(engine, same)
    with _session(engine) as session:
        refuse_other_revisions(session=session, me="r-me", revision=HEAD, ttl_s=15)
    older = replace(ReplicaIdentity.here("0003"), id="r-older")
    _register(engine, older)
    with _session(engine) as session, pytest.raises(SchemaMismatch, match=r"r-older.*0003"):
        refuse_other_revisions(session=session, me="r-me", revision=HEAD, ttl_s=15)
