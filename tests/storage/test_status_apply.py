"""The status path on both databases: batches, polls after webhooks, concurrent writers."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from receiver.cellect.enums import ImplementationStatus as S
from receiver.storage.engine import create_engine_for, session_factory, upgrade
from receiver.storage.status import Observation, Source, apply_observations, writer_for
from receiver.storage.status.core import CoreWriter
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
_sites = itertools.count(1)
reports = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(list(S))), max_size=12)


def _seen(site_id: int, slot: int, status: S, n: int, power: float | None = None) -> Observation:
    start = T0 + SLOT * slot
    return Observation(site_id, start, start + SLOT, status, T0 + timedelta(seconds=n), n, power)


def _apply(session: Session, seen: list[Observation], source: Source = "webhook") -> list[S]:
    changes = apply_observations(
        session=session, observations=seen, source=source, writer=writer_for(session)
    )
    return [change.status for _, change in changes]


def _rows(session: Session, site_id: int) -> list[tuple[object, ...]]:
    """Every entry of a site and its history, without ids and times."""
    entries = session.exec(
        select(ScheduleEntryRecord)
        .where(ScheduleEntryRecord.site_id == site_id)
        .order_by(col(ScheduleEntryRecord.start_at), col(ScheduleEntryRecord.generation))
    ).all()
    rows: list[tuple[object, ...]] = []
    for e in entries:
        history = session.exec(
            select(ScheduleStatusChange.status, ScheduleStatusChange.delivery_id)
            .where(ScheduleStatusChange.entry_id == e.id)
            .order_by(col(ScheduleStatusChange.id))
        ).all()
        rows.append((e.start_at, e.generation, e.status, e.statuses_seen, list(history)))
    return rows


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=reports)
def test_a_batch_equals_its_reports_one_at_a_time(
    engine: Engine, batch: list[tuple[int, S]]
) -> None:
    """Applying webhook reports in one batch stores what applying them one by one does."""
    together, apart = next(_sites), next(_sites)
    with session_factory(engine)() as session:
        _apply(session, [_seen(together, slot, s, n) for n, (slot, s) in enumerate(batch, 1)])
        for n, (slot, s) in enumerate(batch, 1):
            _apply(session, [_seen(apart, slot, s, n)])
        session.commit()
        assert _rows(session, together) == _rows(session, apart)


def test_a_poll_then_its_webhook_counts_once_and_both_are_kept(session: Session) -> None:
    """The poll reports the failure first; the late webhook only confirms it, in the history."""
    assert _apply(session, [_seen(1, 0, S.IN_PROGRESS, 1)]) == [S.IN_PROGRESS]
    polled = [Observation(1, T0, T0 + SLOT, S.IMPLEMENTATION_FAILED, T0, None, -20.0)]
    assert _apply(session, polled, "poll") == [S.IMPLEMENTATION_FAILED]
    session.commit()
    assert _apply(session, [_seen(1, 0, S.IMPLEMENTATION_FAILED, 2)]) == []
    assert _apply(session, polled, "poll") == []
    session.commit()
    [(_, generation, status, seen, history)] = _rows(session, 1)
    assert (generation, status, seen) == (0, S.IMPLEMENTATION_FAILED, 0b1010)
    assert history == [(1, 1), (3, None), (3, 2)]
    entry = session.exec(select(ScheduleEntryRecord)).one()
    assert (entry.power_kw, entry.statuses_unconfirmed) == (-20.0, 0)


def test_a_report_listed_twice_in_one_delivery_counts_once(session: Session) -> None:
    """The same slot and status twice in one delivery is one report."""
    assert _apply(session, [_seen(1, 0, S.IN_PROGRESS, 5), _seen(1, 0, S.IN_PROGRESS, 5)]) == [
        S.IN_PROGRESS
    ]


def test_replay_skips_what_a_delivery_recorded(session: Session) -> None:
    """A replayed report already recorded by its delivery changes nothing."""
    seen = [_seen(1, 0, S.IN_PROGRESS, 1), _seen(1, 0, S.OVERWRITTEN, 2)]
    assert _apply(session, seen) == [S.IN_PROGRESS, S.OVERWRITTEN]
    again = apply_observations(
        session=session,
        observations=seen,
        source="webhook",
        writer=CoreWriter(session),
        replay=True,
    )
    assert again == []


def _wait_for_a_lock_wait(session: Session) -> None:
    """Until another backend of this database waits for a lock (bounded)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock'"
    )
    with session_factory(session.get_bind())() as watcher:  # type: ignore[arg-type]
        for _ in range(200):
            if watcher.execute(query).scalar():
                return
            time.sleep(0.05)
    raise AssertionError("the second writer never waited for the first one's row")


@pytest.mark.postgres
def test_concurrent_writers_each_get_their_own_generation(postgres_url: str) -> None:
    """Two transactions creating the same slot's first entry at once: the second waits,
    finds the first's row, and stores its report as the slot's next entry."""
    engine = create_engine_for(postgres_url)
    upgrade(engine)
    try:
        first = session_factory(engine)()
        assert _apply(first, [_seen(1, 0, S.IN_PROGRESS, 1)]) == [S.IN_PROGRESS]
        result: list[object] = []

        def second() -> None:
            with session_factory(engine)() as session:
                result.append(_apply(session, [_seen(1, 0, S.IN_PROGRESS, 2)]))
                session.commit()

        thread = threading.Thread(target=second)
        thread.start()
        _wait_for_a_lock_wait(first)
        first.commit()
        first.close()
        thread.join(timeout=30.0)
        assert result == [[S.IN_PROGRESS]]
        with session_factory(engine)() as session:
            assert [r[1] for r in _rows(session, 1)] == [0, 1]
    finally:
        engine.dispose()
