"""Reads of the stored history that only the tests make (the operator's reads are production
code: receiver.storage.reads)."""

from __future__ import annotations

from datetime import datetime

from alembic.script import ScriptDirectory
from sqlalchemy import or_
from sqlmodel import Session, col, select

from receiver.cellect.enums import AvailabilityStatus
from receiver.storage.engine import alembic_config
from receiver.storage.tables import (
    AvailabilityEventRecord,
)


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


def head_revision() -> str | None:
    """The newest schema revision this version of the code ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
