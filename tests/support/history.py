"""Reads of the stored history that only the tests make: what the monitor kept, checked."""

from __future__ import annotations

from datetime import datetime

from alembic.script import ScriptDirectory
from sqlalchemy import or_
from sqlmodel import Session, col, select

from receiver.cellect.enums import AvailabilityStatus
from receiver.storage.engine import alembic_config
from receiver.storage.tables import (
    AvailabilityEventRecord,
    Measurement,
    ScheduleStatusChange,
    Site,
)


def list_sites(*, session: Session, present_only: bool = True) -> list[Site]:
    """The sites, by id; only those still in the portfolio unless `present_only` is False."""
    query = select(Site).order_by(col(Site.site_id))
    if present_only:
        query = query.where(col(Site.present))
    return list(session.exec(query).all())


def site_history(
    *, session: Session, site_id: int, start: datetime, end: datetime
) -> list[Measurement]:
    """One site's measurements in [start, end), oldest first."""
    query = (
        select(Measurement)
        .where(
            Measurement.site_id == site_id,
            col(Measurement.measured_at) >= start,
            col(Measurement.measured_at) < end,
        )
        .order_by(col(Measurement.measured_at))
    )
    return list(session.exec(query).all())


def open_events(
    *, session: Session, now: datetime, site_id: int | None = None
) -> list[AvailabilityEventRecord]:
    """NotAvailable events under way at `now` (started, not ended), by site and start."""
    query = (
        select(AvailabilityEventRecord)
        .where(
            AvailabilityEventRecord.availability_status == int(AvailabilityStatus.NOT_AVAILABLE),
            col(AvailabilityEventRecord.start_at) <= now,
            or_(
                col(AvailabilityEventRecord.end_at).is_(None),
                col(AvailabilityEventRecord.end_at) > now,
            ),
        )
        .order_by(col(AvailabilityEventRecord.site_id), col(AvailabilityEventRecord.start_at))
    )
    if site_id is not None:
        query = query.where(AvailabilityEventRecord.site_id == site_id)
    return list(session.exec(query).all())


def site_events(
    *, session: Session, site_id: int, start: datetime, end: datetime
) -> list[AvailabilityEventRecord]:
    """One site's events overlapping [start, end), oldest first."""
    query = (
        select(AvailabilityEventRecord)
        .where(
            AvailabilityEventRecord.site_id == site_id,
            col(AvailabilityEventRecord.start_at) < end,
            or_(
                col(AvailabilityEventRecord.end_at).is_(None),
                col(AvailabilityEventRecord.end_at) > start,
            ),
        )
        .order_by(col(AvailabilityEventRecord.start_at))
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


def head_revision() -> str | None:
    """The newest schema revision this version of the code ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
