"""Schedule entries as stored by the status path: generations, history, power."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from receiver.cellect.enums import ImplementationStatus as S
from receiver.storage.reads.schedule import status_history
from receiver.storage.status import Observation, Source, StatusChange, apply_observations
from receiver.storage.status import writer_for as _writer
from receiver.storage.tables import ScheduleEntryRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def _apply(
    session: Session,
    slot: int,
    status: int,
    *,
    site_id: int = 1,
    source: Source = "webhook",
    observed_at: datetime = T0,
    power_kw: float | None = None,
    delivery_id: int | None = None,
) -> list[StatusChange]:
    start = T0 + slot * QUARTER
    seen = Observation(
        site_id, start, start + QUARTER, S(status), observed_at, delivery_id, power_kw
    )
    changes = apply_observations(
        session=session, observations=[seen], source=source, writer=_writer(session)
    )
    return [change for _, change in changes]


def _entries(session: Session, slot: int, site_id: int = 1) -> list[ScheduleEntryRecord]:
    start = T0 + slot * QUARTER
    query = (
        select(ScheduleEntryRecord)
        .where(ScheduleEntryRecord.site_id == site_id, ScheduleEntryRecord.start_at == start)
        .order_by(col(ScheduleEntryRecord.generation))
    )
    return list(session.exec(query).all())


def test_a_poll_behind_the_webhooks_keeps_the_status_but_fills_in_power(session: Session) -> None:
    """A poll still listing an entry at 1 after its webhook said 2 supplies only the power."""
    assert _apply(session, 0, S.IMPLEMENTED)
    assert not _apply(session, 0, S.IN_PROGRESS, source="poll", power_kw=-42.5)
    session.commit()
    [entry] = _entries(session, 0)
    assert (entry.status, entry.power_kw, entry.updated_source) == (S.IMPLEMENTED, -42.5, "webhook")


def test_a_change_reports_what_it_moved_from(session: Session) -> None:
    """Each change names the entry's previous and new status, source, time and generation;
    the history keeps the source and delivery of every step."""
    later = T0 + timedelta(minutes=20)
    [first] = _apply(session, 0, 1, site_id=3, source="poll", power_kw=10.0)
    [second] = _apply(session, 0, 3, site_id=3, observed_at=later, delivery_id=9)
    session.commit()
    assert (first.previous, first.status, first.generation) == (None, S.IN_PROGRESS, 0)
    assert (second.previous, second.status, second.latest) == (
        S.IN_PROGRESS,
        S.IMPLEMENTATION_FAILED,
        S.IMPLEMENTATION_FAILED,
    )
    [entry] = _entries(session, 0, site_id=3)
    assert (entry.status_at, entry.updated_source, entry.power_kw) == (later, "webhook", 10.0)
    history = status_history(session=session, entry_id=entry.id)
    assert [(h.source, h.delivery_id) for h in history] == [("poll", None), ("webhook", 9)]


def test_every_generation_of_a_replanned_slot_is_kept(session: Session) -> None:
    """1, 5, 1, 3 for one slot: two rows, the overwritten entry and the failed new one."""
    for n, status in enumerate((1, 5, 1, 3)):
        _apply(session, 0, status, delivery_id=n + 1, observed_at=T0 + timedelta(seconds=n))
    session.commit()
    rows = _entries(session, 0)
    assert [(e.generation, e.status, e.statuses_seen) for e in rows] == [
        (0, S.OVERWRITTEN, 0b100010),
        (1, S.IMPLEMENTATION_FAILED, 0b1010),
    ]
    history = [[h.status for h in status_history(session=session, entry_id=e.id)] for e in rows]
    assert history == [[1, 5], [1, 3]]
