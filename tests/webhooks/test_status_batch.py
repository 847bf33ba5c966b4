"""The batched status writer agrees with applying each observation on its own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.engine import create_engine_for, session_factory, upgrade
from receiver.storage.schedules import StatusChange, apply_entry
from receiver.storage.sqlite_batch import SqliteWriter
from receiver.storage.status_batch import CoreWriter, Observation, apply_observations
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
_sites = itertools.count(1)

observations = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(list(ImplementationStatus))), max_size=12
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _observed(site_id: int, slot: int, status: ImplementationStatus, n: int) -> Observation:
    start = T0 + SLOT * slot
    return Observation(site_id, start, start + SLOT, status, T0 + timedelta(seconds=n), n)


def _one(session: Session, seen: Observation) -> StatusChange | None:
    return apply_entry(
        session=session,
        site_id=seen.site_id,
        start=seen.start,
        end=seen.end,
        status=seen.status,
        observed_at=seen.observed_at,
        source="webhook",
        delivery_id=seen.delivery_id,
    )


def _state(session: Session, site_id: int) -> tuple[list[object], list[object]]:
    entries = session.exec(
        select(ScheduleEntryRecord.start_at, ScheduleEntryRecord.status)
        .where(ScheduleEntryRecord.site_id == site_id)
        .order_by(col(ScheduleEntryRecord.start_at))
    ).all()
    history = session.exec(
        select(ScheduleEntryRecord.start_at, ScheduleStatusChange.status)
        .join(ScheduleEntryRecord, col(ScheduleEntryRecord.id) == ScheduleStatusChange.entry_id)
        .where(ScheduleEntryRecord.site_id == site_id)
        .order_by(col(ScheduleEntryRecord.start_at), col(ScheduleStatusChange.id))
    ).all()
    return list(entries), list(history)


@pytest.mark.parametrize("lean", [False, True], ids=["core", "lean"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=observations, batch=observations)
def test_a_batch_matches_one_by_one_application(
    engine: Engine,
    lean: bool,
    before: list[tuple[int, ImplementationStatus]],
    batch: list[tuple[int, ImplementationStatus]],
) -> None:
    """Same final statuses, history and reported changes as `apply_entry` per observation.

    Through either writer: SQLAlchemy Core (both databases) or the lean SQLite one.
    """
    if lean and engine.dialect.name != "sqlite":
        pytest.skip("the lean writer serves SQLite only")
    one_by_one, batched = next(_sites), next(_sites)
    with session_factory(engine)() as session:
        for site in (one_by_one, batched):
            for n, (slot, status) in enumerate(before):
                _one(session, _observed(site, slot, status, n))
        expected = []
        for n, (slot, status) in enumerate(batch, start=100):
            change = _one(session, _observed(one_by_one, slot, status, n))
            if change is not None:
                expected.append((slot, change.previous, change.status))
        seen_batch = [_observed(batched, s, st_, n) for n, (s, st_) in enumerate(batch, start=100)]
        writer = SqliteWriter(session) if lean else CoreWriter(session)
        changes = apply_observations(
            session=session, observations=seen_batch, source="webhook", writer=writer
        )
        session.commit()
        got = [(batch[i][0], c.previous, c.status) for i, c in changes]
        assert sorted(got, key=repr) == sorted(expected, key=repr)
        assert _state(session, batched) == _state(session, one_by_one)
