"""Availability events are stored once however often polled, and updated when they end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from receiver.cellect.enums import AvailabilityStatus, DowntimeType, EventReason, EventSource
from receiver.cellect.models import AvailabilityEvent
from receiver.storage.events import upsert_availability_events, upsert_fleet_events
from receiver.storage.reads.events import event_page
from receiver.storage.tables import AvailabilityEventRecord
from tests.support.history import open_events

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _event(event_id: int, *, end: datetime | None = None, site_id: int = 1) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=event_id,
        site_id=site_id,
        site_name="One",
        country="ES",
        latitude=40.0,
        longitude=-3.0,
        availability_status=AvailabilityStatus.NOT_AVAILABLE,
        type=DowntimeType.UNPLANNED,
        reason=EventReason.OUTAGE,
        source=EventSource.INVERTER,
        start_date=T0,
        end_date=end,
    )


def test_an_event_polled_three_times_is_stored_once(session: Session) -> None:
    """Three polls answering the same event leave one row, counted new only the first time."""
    news = [
        upsert_availability_events(
            session=session, site_id=1, events=[_event(10)], seen_at=T0 + timedelta(minutes=i)
        )
        for i in range(3)
    ]
    session.commit()
    assert news == [1, 0, 0]
    rows = session.exec(select(AvailabilityEventRecord)).all()
    assert len(rows) == 1
    assert (rows[0].first_seen_at, rows[0].last_seen_at) == (T0, T0 + timedelta(minutes=2))
    assert (rows[0].downtime_type, rows[0].reason, rows[0].source) == ("Unplanned", 4, 4)


def test_an_event_that_ends_is_updated_in_place(session: Session) -> None:
    """When a polled event gains its end, the stored row gets it and stops being open."""
    upsert_availability_events(session=session, site_id=1, events=[_event(10)], seen_at=T0)
    now = T0 + timedelta(hours=1)
    assert [e.event_id for e in open_events(session=session, now=now)] == [10]
    end = T0 + timedelta(minutes=30)
    new = upsert_availability_events(
        session=session, site_id=1, events=[_event(10, end=end), _event(11)], seen_at=now
    )
    session.commit()
    assert new == 1
    stored = session.exec(select(AvailabilityEventRecord).order_by("event_id")).all()
    assert [(e.event_id, e.end_at) for e in stored] == [(10, end), (11, None)]
    assert [e.event_id for e in open_events(session=session, now=now, site_id=1)] == [11]
    window = event_page(session=session, site_id=1, start=T0, end=now).items
    assert [e.event_id for e in window] == [10, 11]


def test_event_ids_are_per_site(session: Session) -> None:
    """The same vendor event id on two sites is two events."""
    for site_id in (1, 2):
        upsert_availability_events(
            session=session, site_id=site_id, events=[_event(5, site_id=site_id)], seen_at=T0
        )
    session.commit()
    assert len(session.exec(select(AvailabilityEventRecord)).all()) == 2


def test_a_rounds_chunk_of_sites_is_upserted_at_once(session: Session) -> None:
    """The events poller's form: many sites in one call; known events updated in place,
    new ones inserted, the same event twice in one answer stored once (the last)."""
    upsert_availability_events(session=session, site_id=1, events=[_event(10)], seen_at=T0)
    end, later = T0 + timedelta(minutes=30), T0 + timedelta(hours=1)
    written = upsert_fleet_events(
        session=session,
        events_by_site={
            1: [_event(10, end=end), _event(11)],
            2: [_event(10, site_id=2), _event(10, site_id=2, end=end)],
            3: [],
        },
        seen_at=later,
    )
    session.commit()
    assert written == 3
    stored = session.exec(select(AvailabilityEventRecord).order_by("site_id", "event_id")).all()
    assert [(e.site_id, e.event_id, e.end_at) for e in stored] == [
        (1, 10, end), (1, 11, None), (2, 10, end),
    ]  # fmt: skip
    first_seen = {(e.site_id, e.event_id): e.first_seen_at for e in stored}
    assert first_seen == {(1, 10): T0, (1, 11): later, (2, 10): later}
    assert all(e.last_seen_at == later for e in stored)
    assert [e.event_id for e in open_events(session=session, now=later)] == [11]
