"""Repository functions for availability events: each vendor event stored once.

The vendor answers every poll with the events it still knows; a poller hands them all
over each time. An event is inserted the first time it is seen and updated afterwards
(an open event gets its end when it ends). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    _upsert(session, rows.values())
    return len(set(rows) - known)


def upsert_fleet_events(
    *,
    session: Session,
    events_by_site: Mapping[int, Sequence[AvailabilityEvent]],
    seen_at: datetime,
) -> int:
    """`upsert_availability_events` for many sites at once (a poll round's chunk), without
    counting the new ones: one statement over every row, where a pair of statements per
    site, each built and run through the ORM, held the GIL for most of an events round
    (docs/performance.md). Returns how many rows were written."""
    rows = {
        (site_id, event.event_id): _event_row(site_id, event, seen_at)
        for site_id, events in events_by_site.items()
        for event in events
    }
    _upsert(session, rows.values())
    return len(rows)


def _upsert(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Insert or update `rows` (one per site and event: PostgreSQL refuses to upsert the
    same row twice in a statement) with one compiled statement over many parameter sets."""
    stmt = insert_for(session, AvailabilityEventRecord)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "event_id"],
        set_={name: stmt.excluded[name] for name in _EVENT_UPDATES},
    )
    for chunk in chunks(list(rows)):
        session.execute(stmt, list(chunk))
