"""The fleet's present as stored: what a starting monitor reads back (both databases)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from receiver.cellect.enums import (
    AvailabilityStatus,
    DowntimeType,
    EventReason,
    EventSource,
    ImplementationStatus,
)
from receiver.cellect.models import AvailabilityEvent, SiteInformation
from receiver.storage.events import upsert_availability_events
from receiver.storage.fleet_state import load_fleet
from receiver.storage.sites import record_measurements, upsert_sites
from receiver.storage.status import Observation, apply_observations, writer_for

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

S = ImplementationStatus
HOUR = timedelta(hours=1)
SLOT = timedelta(minutes=15)


def _event(site_id: int, event_id: int, start_h: float, end_h: float | None) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=event_id, site_id=site_id, site_name="x", country="ES", latitude=0.0,
        longitude=0.0, availability_status=AvailabilityStatus.NOT_AVAILABLE,
        type=DowntimeType.UNPLANNED, reason=EventReason.OUTAGE, source=EventSource.INVERTER,
        start_date=T0 + start_h * HOUR, end_date=None if end_h is None else T0 + end_h * HOUR,
    )  # fmt: skip


def _report(session: Session, site_id: int, slot_h: float, status: S, at_h: float) -> None:
    start = T0 + slot_h * HOUR
    seen = Observation(site_id, start, start + SLOT, status, T0 + at_h * HOUR)
    apply_observations(
        session=session, observations=[seen], source="webhook", writer=writer_for(session)
    )


def test_load_fleet_reads_back_the_present(
    session: Session, make_site: Callable[..., SiteInformation]
) -> None:
    """Sites with their latest measurement, open events only, each slot's newest entry
    ahead of now, the failures whose hold still ran when the monitor was last at work
    (its latest measurement), oldest first."""
    upsert_sites(session=session, sites=[make_site(1), make_site(2)], seen_at=T0)
    record_measurements(session=session, sites=[make_site(1, soc=40.0)], measured_at=T0)
    later = T0 + HOUR
    record_measurements(session=session, sites=[make_site(1, soc=5.0)], measured_at=later)
    events = [_event(2, 1, -5, -4), _event(2, 2, -1, None)]
    upsert_availability_events(session=session, site_id=2, events=events, seen_at=later)
    for status in (S.IN_PROGRESS, S.OVERWRITTEN, S.IN_PROGRESS):  # slot 3 h re-planned
        _report(session, 1, 3, status, 0.5)
    _report(session, 1, 0, S.IMPLEMENTATION_FAILED, -0.5)  # its hold ended before
    _report(session, 1, 0.25, S.IMPLEMENTATION_FAILED, 0.25)  # held when last at work
    _report(session, 1, 1, S.IMPLEMENTATION_FAILED, 1.5)
    _report(session, 2, 1.25, S.IMPLEMENTATION_FAILED, 1.75)
    session.commit()
    now = T0 + 2 * HOUR
    stored = load_fleet(session=session, now=now, failure_hold=HOUR)
    by_site = {s.info.site_id: s for s in stored.sites}
    assert (by_site[1].info.ess_soc, by_site[1].measured_at) == (5.0, later)
    assert by_site[2].measured_at is None
    assert [e.event_id for e in stored.open_events[2]] == [2]
    assert stored.events_seen == {2: later}
    assert stored.planned == {1: {(T0 + 3 * HOUR, T0 + 3 * HOUR + SLOT): S.IN_PROGRESS}}
    assert stored.powers == {1: {}}  # known from webhooks only: no planned power yet
    assert stored.scheduled_sites == {1, 2}
    assert stored.last_activity == later
    assert [(f.site_id, f.at) for f in stored.failures] == [
        (1, T0 + 0.25 * HOUR),
        (1, T0 + 1.5 * HOUR),
        (2, T0 + 1.75 * HOUR),
    ]
