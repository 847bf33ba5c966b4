"""Read-side repository functions for schedule entries and their status history.

Entries are written by the one status path (receiver.storage.status): each row is one
entry, a generation of its slot, with its furthest status.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange

_PLANNED = (int(ImplementationStatus.IN_PROGRESS), int(ImplementationStatus.IMPLEMENTED))


def planned_horizon(*, session: Session, site_id: int, now: datetime) -> datetime | None:
    """The end of the latest planned (InProgress/Implemented) entry ending after `now`."""
    query = select(func.max(ScheduleEntryRecord.end_at)).where(
        ScheduleEntryRecord.site_id == site_id,
        col(ScheduleEntryRecord.status).in_(_PLANNED),
        col(ScheduleEntryRecord.end_at) > now,
    )
    return session.exec(query).one()


def planned_horizons(*, session: Session, now: datetime) -> dict[int, datetime]:
    """`planned_horizon` of every site that has one, in one query."""
    query = (
        select(ScheduleEntryRecord.site_id, func.max(ScheduleEntryRecord.end_at))
        .where(col(ScheduleEntryRecord.status).in_(_PLANNED), col(ScheduleEntryRecord.end_at) > now)
        .group_by(col(ScheduleEntryRecord.site_id))
    )
    return {site_id: end for site_id, end in session.exec(query).all()}


def entries_in_progress_near_start(
    *, session: Session, now: datetime, within_s: float
) -> list[ScheduleEntryRecord]:
    """Entries still InProgress that start within `within_s` of `now` (or already started)."""
    query = (
        select(ScheduleEntryRecord)
        .where(
            ScheduleEntryRecord.status == int(ImplementationStatus.IN_PROGRESS),
            col(ScheduleEntryRecord.start_at) <= now + timedelta(seconds=within_s),
            col(ScheduleEntryRecord.end_at) > now,
        )
        .order_by(col(ScheduleEntryRecord.start_at), col(ScheduleEntryRecord.site_id))
    )
    return list(session.exec(query).all())


def status_counts(*, session: Session) -> dict[tuple[int, int], int]:
    """How many entries each (site_id, status) has."""
    query = select(ScheduleEntryRecord.site_id, ScheduleEntryRecord.status, func.count()).group_by(
        col(ScheduleEntryRecord.site_id), col(ScheduleEntryRecord.status)
    )
    return {(site_id, status): count for site_id, status, count in session.exec(query).all()}


def entries_in_range(
    *, session: Session, site_id: int, start: datetime, end: datetime
) -> list[ScheduleEntryRecord]:
    """One site's entries overlapping [start, end), by start."""
    query = (
        select(ScheduleEntryRecord)
        .where(
            ScheduleEntryRecord.site_id == site_id,
            col(ScheduleEntryRecord.start_at) < end,
            col(ScheduleEntryRecord.end_at) > start,
        )
        .order_by(col(ScheduleEntryRecord.start_at))
    )
    return list(session.exec(query).all())


def status_history(*, session: Session, entry_id: int) -> list[ScheduleStatusChange]:
    """The status changes of one entry, in the order they were applied."""
    query = (
        select(ScheduleStatusChange)
        .where(ScheduleStatusChange.entry_id == entry_id)
        .order_by(col(ScheduleStatusChange.id))
    )
    return list(session.exec(query).all())
