"""Repository functions for availability events: each vendor event stored once.

The vendor answers every poll with the events it still knows; a poller hands them all
over each time. An event is inserted the first time it is seen and updated afterwards
(an open event gets its end when it ends). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from receiver.cellect.models import AvailabilityEvent
from receiver.storage.dialect import chunks, insert_for
from receiver.storage.tables import AvailabilityEventRecord

_EVENT_UPDATES = (
    "availability_status",
    "downtime_type",
    "reason",
    "source",
    "start_at",
    "end_at",
    "last_seen_at",
)


def _event_row(site_id: int, event: AvailabilityEvent, seen_at: datetime) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "event_id": event.event_id,
        "availability_status": int(event.availability_status),
        "downtime_type": str(event.type),
        "reason": int(event.reason),
        "source": int(event.source),
        "start_at": event.start_date,
        "end_at": event.end_date,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
    }


def upsert_availability_events(
    *, session: Session, site_id: int, events: Sequence[AvailabilityEvent], seen_at: datetime
) -> int:
    """Insert unseen events of `site_id`, update the known ones; returns how many were new."""
    rows = {event.event_id: _event_row(site_id, event, seen_at) for event in events}
    known = set(
        session.exec(
            select(AvailabilityEventRecord.event_id).where(
                AvailabilityEventRecord.site_id == site_id,
                col(AvailabilityEventRecord.event_id).in_(list(rows)),
            )
        ).all()
    )
    for chunk in chunks(list(rows.values())):
        stmt = insert_for(session, AvailabilityEventRecord).values(list(chunk))
        session.exec(
            stmt.on_conflict_do_update(
                index_elements=["site_id", "event_id"],
                set_={name: stmt.excluded[name] for name in _EVENT_UPDATES},
            )
        )
    return len(set(rows) - known)
