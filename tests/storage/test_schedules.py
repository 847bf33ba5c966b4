"""Schedule entries: statuses only move forward, history is kept, planning queries answer."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from receiver.cellect.enums import ImplementationStatus as S
from receiver.storage.schedules import (
    apply_entry,
    apply_entry_status,
    entries_in_progress_near_start,
    entries_in_range,
    planned_horizon,
    planned_horizons,
    status_counts,
    status_history,
)
from receiver.storage.tables import ScheduleEntryRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def _apply(session: Session, slot: int, status: int, **kwargs: object) -> bool:
    start = T0 + slot * QUARTER
    values: dict[str, object] = {"observed_at": T0, "source": "webhook", "site_id": 1} | kwargs
    return apply_entry_status(
        session=session,
        start=start,
        end=start + QUARTER,
        status=status,
        **values,
    )


def _entry(session: Session, slot: int, site_id: int = 1) -> ScheduleEntryRecord:
    start = T0 + slot * QUARTER
    query = select(ScheduleEntryRecord).where(
        ScheduleEntryRecord.site_id == site_id, ScheduleEntryRecord.start_at == start
    )
    return session.exec(query).one()


def test_every_pair_of_statuses_in_both_orders(session: Session) -> None:
    """For every ordered pair, the entry ends at the first unless the second ranks higher."""
    pairs = list(itertools.product(S, repeat=2))
    for slot, (first, second) in enumerate(pairs):
        assert _apply(session, slot, first)
        moved = _apply(session, slot, second, observed_at=T0 + timedelta(seconds=1))
        assert moved == (second.rank > first.rank), (first, second)
    session.commit()
    session.expunge_all()
    for slot, (first, second) in enumerate(pairs):
        entry = _entry(session, slot)
        expected = second if second.rank > first.rank else first
        assert entry.status == expected, (first, second)
        history = [change.status for change in status_history(session=session, entry_id=entry.id)]
        assert history == ([first, second] if second.rank > first.rank else [first])


def test_a_stale_status_keeps_the_newer_but_fills_in_power(session: Session) -> None:
    """A poll reporting an older status still supplies the power the webhook lacked."""
    assert _apply(session, 0, S.IMPLEMENTED)
    assert not _apply(session, 0, S.IN_PROGRESS, source="poll", power_kw=-42.5)
    session.commit()
    entry = _entry(session, 0)
    assert (entry.status, entry.power_kw, entry.updated_source) == (S.IMPLEMENTED, -42.5, "webhook")


def test_a_change_reports_what_it_moved_from(session: Session) -> None:
    """apply_entry describes the change made: previous and new status, source and time."""
    start, end = T0, T0 + QUARTER
    common = {"session": session, "site_id": 3, "start": start, "end": end}
    first = apply_entry(**common, status=1, observed_at=T0, source="poll", power_kw=10.0)
    later = T0 + timedelta(minutes=20)
    second = apply_entry(**common, status=3, observed_at=later, source="webhook", delivery_id=9)
    session.commit()
    assert first is not None
    assert (first.previous, first.status) == (None, S.IN_PROGRESS)
    assert second is not None
    assert (second.previous, second.status) == (S.IN_PROGRESS, S.IMPLEMENTATION_FAILED)
    entry = _entry(session, 0, site_id=3)
    assert (entry.status_at, entry.updated_source, entry.power_kw) == (later, "webhook", 10.0)
    history = status_history(session=session, entry_id=entry.id)
    assert [(h.source, h.delivery_id) for h in history] == [("poll", None), ("webhook", 9)]


def test_planned_horizon_and_status_counts(session: Session) -> None:
    """The horizon is the end of the last planned entry after now; counts group by site, status."""
    for slot, status in enumerate([S.IMPLEMENTED, S.IN_PROGRESS, S.IN_PROGRESS, S.DELETED]):
        _apply(session, slot, status)
    _apply(session, 0, S.IMPLEMENTED, site_id=2)
    session.commit()
    now = T0 + timedelta(minutes=5)
    assert planned_horizon(session=session, site_id=1, now=now) == T0 + 3 * QUARTER
    assert planned_horizon(session=session, site_id=1, now=T0 + 3 * QUARTER) is None
    assert planned_horizon(session=session, site_id=9, now=now) is None
    assert planned_horizons(session=session, now=now) == {1: T0 + 3 * QUARTER, 2: T0 + QUARTER}
    assert status_counts(session=session) == {(1, 1): 2, (1, 2): 1, (1, 4): 1, (2, 2): 1}


def test_in_progress_entries_near_their_start(session: Session) -> None:
    """Only InProgress entries starting within the window (or already running) are listed."""
    for slot, status in [
        (0, S.IN_PROGRESS),
        (1, S.IN_PROGRESS),
        (2, S.IN_PROGRESS),
        (3, S.IMPLEMENTED),
    ]:
        _apply(session, slot, status)
    session.commit()
    now = T0 + QUARTER + timedelta(minutes=1)  # slot 0 is over, slot 1 running
    found = entries_in_progress_near_start(session=session, now=now, within_s=15 * 60)
    assert [e.start_at for e in found] == [T0 + QUARTER, T0 + 2 * QUARTER]
    in_range = entries_in_range(session=session, site_id=1, start=now, end=now + QUARTER)
    assert [e.start_at for e in in_range] == [T0 + QUARTER, T0 + 2 * QUARTER]
