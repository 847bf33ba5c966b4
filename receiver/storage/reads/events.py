"""A site's availability events over a window, a page at a time.

An event is in the window [start, end) when it overlaps it: it started before `end` and
had not ended by `start` (an open event has not ended). Ordered by start, then id; the
(site_id, start_at) index serves the site and the window's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, tuple_
from sqlmodel import Session, col

from receiver.storage.reads.paging import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    check_window,
    decode_cursor,
    encode_cursor,
    page_of,
)
from receiver.storage.tables import AvailabilityEventRecord

_KIND = "events"


@dataclass(frozen=True)
class EventView:
    """One vendor availability event as stored (`end_at` None while it is open)."""

    id: int
    site_id: int
    event_id: int
    availability_status: int
    downtime_type: str
    reason: int
    source: int
    start_at: datetime
    end_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime


def event_page(
    *,
    session: Session,
    site_id: int,
    start: datetime | None = None,
    end: datetime | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[EventView]:
    """A site's events overlapping [start, end) (either side open), oldest start first."""
    check_window(start, end)
    check_limit(limit)
    e = AvailabilityEventRecord
    query = (
        select(e)
        .where(col(e.site_id) == site_id)
        .order_by(col(e.start_at), col(e.id))
        .limit(limit + 1)
    )
    if end is not None:
        query = query.where(col(e.start_at) < end)
    if start is not None:
        query = query.where(or_(col(e.end_at).is_(None), col(e.end_at) > start))
    if after is not None:
        key = decode_cursor(after, _KIND, (datetime, int))
        query = query.where(tuple_(col(e.start_at), col(e.id)) > key)
    views = [
        EventView(
            id=r.id,
            site_id=r.site_id,
            event_id=r.event_id,
            availability_status=r.availability_status,
            downtime_type=r.downtime_type,
            reason=r.reason,
            source=r.source,
            start_at=r.start_at,
            end_at=r.end_at,
            first_seen_at=r.first_seen_at,
            last_seen_at=r.last_seen_at,
        )
        for r in session.execute(query).scalars()
    ]
    return page_of(views, limit, lambda v: encode_cursor(_KIND, v.start_at, v.id))
