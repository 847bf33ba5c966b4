"""The next planned outage of each site, from the events poll through the Fleet to /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.cellect.enums import AvailabilityStatus, DowntimeType, EventReason, EventSource
from receiver.cellect.models import AvailabilityEvent, SiteInformation
from receiver.fleet.picture import Fleet
from receiver.metrics.registry import Metrics, render_metrics

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
STALE_AFTER = 600.0
NEXT_START = "cellect_site_next_planned_outage_start_timestamp_seconds"
NEXT_END = "cellect_site_next_planned_outage_end_timestamp_seconds"
SITE = {"site_id": "7"}


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(START)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def fleet(registry: CollectorRegistry, clock: Clock) -> Fleet:
    """A fleet on a fresh registry that has seen site 7 in a portfolio poll."""
    metrics = Metrics(registry, now=clock.timestamp, stale_after_s=STALE_AFTER)
    fleet = Fleet(metrics=metrics, clock=clock, in_progress_stuck_s=300.0)
    metrics.update_sites(fleet.portfolio_polled([_site(7)]))
    return fleet


def _site(site_id: int) -> SiteInformation:
    return SiteInformation(
        site_id=site_id, site_name=f"Site {site_id}", country="DE", latitude=52.5,
        longitude=13.4, ess_soc=50, ess_power=0, ess_installed_energy_capacity=100,
        ess_power_ac_rated_discharge=50, ess_power_ac_rated_charge=50,
    )  # fmt: skip


def _event(
    event_id: int,
    start: datetime,
    end: datetime | None,
    downtime_type: DowntimeType = DowntimeType.PLANNED,
) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=event_id, site_id=7, site_name="Site 7", country="DE", latitude=52.5,
        longitude=13.4, availability_status=AvailabilityStatus.NOT_AVAILABLE,
        type=downtime_type, reason=EventReason.MAINTENANCE, source=EventSource.CELLECT,
        start_date=start, end_date=end,
    )  # fmt: skip


def _value(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, SITE)


def test_the_earliest_planned_event_ahead_is_exported(
    fleet: Fleet, registry: CollectorRegistry
) -> None:
    """Of the planned events still ahead, the earliest one's start and end are exported."""
    later = _event(2, START + 5 * HOUR, START + 6 * HOUR)
    sooner = _event(1, START + 2 * HOUR, START + 3 * HOUR)
    fleet.availability_polled(7, [later, sooner])
    assert _value(registry, NEXT_START) == (START + 2 * HOUR).timestamp()
    assert _value(registry, NEXT_END) == (START + 3 * HOUR).timestamp()
    assert f'{NEXT_START}{{site_id="7"}}' in render_metrics(fleet.metrics).decode()


def test_running_past_and_unplanned_events_are_not_upcoming(
    fleet: Fleet, registry: CollectorRegistry
) -> None:
    """Running, ended and unplanned events leave the series absent (nothing is planned)."""
    events = [
        _event(1, START - HOUR, START + HOUR),  # running now
        _event(2, START - 3 * HOUR, START - 2 * HOUR),  # over
        _event(3, START + HOUR, START + 2 * HOUR, DowntimeType.UNPLANNED),
    ]
    fleet.availability_polled(7, events)
    assert _value(registry, NEXT_START) is None
    assert _value(registry, NEXT_END) is None
    assert f"{NEXT_START}{{" not in render_metrics(fleet.metrics).decode()


def test_an_open_ended_planned_event_has_a_start_only(
    fleet: Fleet, registry: CollectorRegistry
) -> None:
    """A planned event announced without an end exports its start and no end."""
    fleet.availability_polled(7, [_event(1, START + HOUR, None)])
    assert _value(registry, NEXT_START) == (START + HOUR).timestamp()
    assert _value(registry, NEXT_END) is None


def test_the_series_goes_at_the_start_even_without_a_new_poll(
    fleet: Fleet, registry: CollectorRegistry, clock: Clock
) -> None:
    """Once its start has come the event is no longer "next", though no poll said so."""
    fleet.availability_polled(7, [_event(1, START + timedelta(seconds=120), START + HOUR)])
    render_metrics(fleet.metrics)  # fills the cache that the start must invalidate
    clock.advance(120)
    assert _value(registry, NEXT_START) is None
    assert f"{NEXT_START}{{" not in render_metrics(fleet.metrics).decode()


def test_a_withdrawn_event_disappears_at_the_next_poll(
    fleet: Fleet, registry: CollectorRegistry
) -> None:
    """An events poll that no longer lists the planned event removes the series."""
    fleet.availability_polled(7, [_event(1, START + 2 * HOUR, START + 3 * HOUR)])
    fleet.availability_polled(7, [])
    assert _value(registry, NEXT_START) is None


def test_the_series_goes_stale_without_events_polls(
    fleet: Fleet, registry: CollectorRegistry, clock: Clock
) -> None:
    """Not refreshed by an events poll for stale_after_s, the next outage is not shown."""
    fleet.availability_polled(7, [_event(1, START + 2 * HOUR, START + 3 * HOUR)])
    clock.advance(STALE_AFTER)
    assert _value(registry, NEXT_START) is None
