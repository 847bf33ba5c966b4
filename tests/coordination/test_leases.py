"""Lease rows: taking, renewing, expiring, handing back, and fencing writes by epoch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from receiver.coordination import leases
from receiver.coordination.errors import LeaseLost
from receiver.coordination.leases import Held
from receiver.storage.engine import create_engine_for, session_factory, upgrade
from receiver.storage.secrets import MonitorSecret
from tests.support.replicas import owners

KIND = "poll"


def _wait_expired(engine: Engine, bucket: int, timeout_s: float = 5.0) -> None:
    """Bounded polling until the database's clock has the lease (KIND, bucket) expired."""
    deadline = time.monotonic() + timeout_s
    while bucket in owners(engine, KIND):
        assert time.monotonic() < deadline, "the lease did not expire"
        time.sleep(0.05)


def _in(engine: Engine, work: Callable[[Session], object]) -> object:
    with session_factory(engine)() as session:
        result = work(session)
        session.commit()
    return result


def _acquire(engine: Engine, owner: str, bucket: int = 3, ttl_s: float = 30.0) -> object:
    return _in(
        engine,
        lambda s: leases.acquire(session=s, owner=owner, kind=KIND, bucket=bucket, ttl_s=ttl_s),
    )


def _write_fenced(engine: Engine, name: str, epoch: int, bucket: int = 3) -> None:
    """A write made under the lease: a row, then the fence, then the commit."""
    with session_factory(engine)() as session:
        session.add(MonitorSecret(name=name, value="v", created_at=datetime.now(UTC)))
        session.flush()
        leases.fence(session=session, kind=KIND, bucket=bucket, epoch=epoch)
        session.commit()


def _written(engine: Engine) -> set[str]:
    with session_factory(engine)() as session:
        return set(session.exec(select(MonitorSecret.name)).all())


def test_acquire_renew_expire_and_takeover_bump_the_epoch(engine: Engine) -> None:
    """A free lease is taken at epoch 1 and kept at 1 by its owner; nobody else gets it
    while it lives; once it expires by the database's clock another owner takes it at
    epoch 2, and the old owner's renewal no longer finds it."""
    assert _acquire(engine, "a", ttl_s=1.0) == 1
    assert _acquire(engine, "a", ttl_s=1.0) == 1
    assert _acquire(engine, "b") is None
    held = [Held(KIND, 3, 1)]
    renewed = _in(engine, lambda s: leases.renew(session=s, owner="a", held=held, ttl_s=1.0))
    assert renewed == held
    assert owners(engine, KIND) == {3: "a"}
    _wait_expired(engine, 3)
    assert _acquire(engine, "b") == 2
    assert owners(engine, KIND) == {3: "b"}
    assert _in(engine, lambda s: leases.renew(session=s, owner="a", held=held, ttl_s=30)) == []


def test_acquire_free_takes_at_most_its_limit_lowest_first(engine: Engine) -> None:
    """Bulk taking takes exactly `limit` of the free leases, lowest buckets first, skipping
    held ones, each at a new epoch."""
    _in(engine, lambda s: leases.ensure_leases(session=s, kind=KIND, buckets=range(10)))
    assert _acquire(engine, "a", bucket=1) == 1
    taken = _in(
        engine,
        lambda s: leases.acquire_free(session=s, owner="b", kind=KIND, limit=3, ttl_s=30),
    )
    assert taken == [Held(KIND, 0, 1), Held(KIND, 2, 1), Held(KIND, 3, 1)]
    assert sorted(owners(engine, KIND).items()) == [(0, "b"), (1, "a"), (2, "b"), (3, "b")]


def test_release_frees_the_lease_and_the_next_taker_gets_a_higher_epoch(engine: Engine) -> None:
    """A handed-back lease is free at once (no expiry to wait for), keeps its epoch so
    the next taker's is higher, and the old tenure's fenced writes are refused."""
    assert _acquire(engine, "a") == 1
    released = _in(engine, lambda s: leases.release(session=s, owner="a", held=[Held(KIND, 3, 1)]))
    assert released == [Held(KIND, 3, 1)]
    assert owners(engine, KIND) == {}
    with pytest.raises(LeaseLost, match="handed back"):
        _write_fenced(engine, "after-release", epoch=1)
    assert _acquire(engine, "b") == 2


def test_a_zombie_fenced_write_after_takeover_is_refused_and_changes_nothing(
    engine: Engine,
) -> None:
    """An owner paused past its lease (a zombie) writes under its old epoch after another
    took the lease over: LeaseLost, and its row is not stored; the new owner's is."""
    epoch = _acquire(engine, "zombie", ttl_s=1.0)
    assert epoch == 1
    _write_fenced(engine, "before-pause", epoch=1)
    _wait_expired(engine, 3)
    with pytest.raises(LeaseLost, match="expired"):
        _write_fenced(engine, "while-expired", epoch=1)
    assert _acquire(engine, "successor") == 2
    with pytest.raises(
        LeaseLost, match=r"lease poll/3 \(epoch 1\).*now at epoch 2, owner successor"
    ):
        _write_fenced(engine, "zombie-write", epoch=1)
    _write_fenced(engine, "successor-write", epoch=2)
    assert _written(engine) == {"before-pause", "successor-write"}


@pytest.mark.postgres
def test_a_takeover_waits_for_an_in_flight_fenced_write(postgres_url: str) -> None:
    """On PostgreSQL a fenced write holds the lease row FOR SHARE: a takeover of the
    expired lease waits (on a row lock) until that write commits, bulk taking skips
    the row rather than wait, and once the takeover is done the old owner's next write
    is refused."""
    upgrade(postgres_url)
    writer, taker = create_engine_for(postgres_url), create_engine_for(postgres_url)
    try:
        assert _acquire(writer, "old", bucket=0, ttl_s=1.0) == 1
        session = session_factory(writer)()
        try:
            session.add(MonitorSecret(name="in-flight", value="v", created_at=datetime.now(UTC)))
            session.flush()
            leases.fence(session=session, kind=KIND, bucket=0, epoch=1)
            _wait_expired(taker, 0)  # reads are not blocked by FOR SHARE

            skipped = _in(
                taker,
                lambda s: leases.acquire_free(session=s, owner="new", kind=KIND, limit=1, ttl_s=30),
            )
            assert skipped == []

            outcome: dict[str, object] = {}
            pid: list[int] = []

            def take_over() -> None:
                with session_factory(taker)() as s:
                    s.execute(text("SET LOCAL lock_timeout = '20s'"))  # bounded, should it hang
                    pid.append(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    outcome["epoch"] = leases.acquire(
                        session=s, owner="new", kind=KIND, bucket=0, ttl_s=30
                    )
                    s.commit()

            thread = threading.Thread(target=take_over)
            thread.start()
            deadline = time.monotonic() + 10
            while _wait_event(writer, pid) != "Lock":
                assert time.monotonic() < deadline, "the takeover never waited on the lock"
                time.sleep(0.02)
            assert thread.is_alive()
            assert "epoch" not in outcome
            session.commit()
        finally:
            session.close()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert outcome == {"epoch": 2}
        assert _written(writer) == {"in-flight"}
        with pytest.raises(LeaseLost):
            _write_fenced(writer, "late", epoch=1, bucket=0)
        assert _written(writer) == {"in-flight"}
    finally:
        writer.dispose()
        taker.dispose()


def _wait_event(engine: Engine, pid: list[int]) -> str | None:
    """What the backend of `pid` (once known) is waiting on: 'Lock' for a row lock."""
    if not pid:
        return None
    with engine.connect() as connection:
        query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
        value: str | None = connection.execute(query, {"pid": pid[0]}).scalar()
        return value


def test_an_expired_lease_nobody_took_is_renewed_at_the_same_epoch(engine: Engine) -> None:
    """An owner late with its renewal gets its lease back at the same epoch if nobody
    took it meanwhile (no one else's work can have been written), and its fenced
    writes pass again; while it was expired they were refused."""
    assert _acquire(engine, "late", ttl_s=0.5) == 1
    _wait_expired(engine, 3)
    with pytest.raises(LeaseLost, match="expired"):
        _write_fenced(engine, "while-expired", epoch=1)
    held = [Held(KIND, 3, 1)]
    assert _in(engine, lambda s: leases.renew(session=s, owner="late", held=held, ttl_s=30)) == held
    _write_fenced(engine, "renewed", epoch=1)
    assert _written(engine) == {"renewed"}


def test_fence_all_checks_every_bucket_of_a_write(engine: Engine) -> None:
    """A write spanning several buckets passes while all of them are held at their
    epochs, and is refused naming the first one that is not."""
    for bucket in (1, 2, 5):
        assert _acquire(engine, "a", bucket=bucket) == 1
    with session_factory(engine)() as session:
        leases.fence_all(session=session, kind=KIND, epochs={5: 1, 1: 1, 2: 1})
    _in(engine, lambda s: leases.release(session=s, owner="a", held=[Held(KIND, 2, 1)]))
    assert _acquire(engine, "b", bucket=2) == 2
    with (
        session_factory(engine)() as session,
        pytest.raises(LeaseLost, match=r"poll/2 \(epoch 1\)"),
    ):
        leases.fence_all(session=session, kind=KIND, epochs={5: 1, 1: 1, 2: 1})
    with (
        session_factory(engine)() as session,
        pytest.raises(LeaseLost, match=r"poll/9.*no such lease"),
    ):
        leases.fence_all(session=session, kind=KIND, epochs={9: 1})
