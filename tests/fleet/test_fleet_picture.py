"""The fleet picture on its own: plans, horizons and failures from status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus as S
from receiver.fleet.picture import Fleet
from receiver.metrics.registry import Metrics
from receiver.storage.status import StatusChange

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _fleet() -> Fleet:
    clock = Clock.frozen(NOW)
    metrics = Metrics(CollectorRegistry(), now=clock.timestamp)
    return Fleet(metrics=metrics, clock=clock, in_progress_stuck_s=300.0, polling=False)


def _change(site_id: int, hours: float, status: S, latest: S | None = None) -> StatusChange:
    start = NOW + timedelta(hours=hours)
    end = start + timedelta(minutes=15)
    return StatusChange(site_id, start, end, None, status, "webhook", NOW, 0, latest or status)


def test_an_entry_beyond_48_hours_does_not_stretch_the_horizon() -> None:
    """A planned entry 72 h ahead (no vendor plan reaches that far) is left out of the
    horizon; one 10 h ahead counts."""
    fleet = _fleet()
    fleet.statuses_changed([_change(1, 72, S.IN_PROGRESS)])
    assert fleet.view().sites[0].horizon_end is None
    fleet.statuses_changed([_change(1, 10, S.IMPLEMENTED)])
    assert fleet.view().sites[0].horizon_end == NOW + timedelta(hours=10, minutes=15)


def test_a_slot_follows_its_newest_entry() -> None:
    """The old entry of a slot overwritten while the new one is InProgress: the slot is
    planned (the newest entry's status), and the new entry's failure starts a run."""
    fleet = _fleet()
    fleet.statuses_changed([_change(2, 1, S.OVERWRITTEN, latest=S.IN_PROGRESS)])
    [site] = fleet.view().sites
    assert site.horizon_end == NOW + timedelta(hours=1, minutes=15)
    fleet.statuses_changed([_change(2, 1, S.IMPLEMENTATION_FAILED)])
    [site] = fleet.view().sites
    assert site.failure_run is not None
    assert site.failure_run.first.entry_start == NOW + timedelta(hours=1)
    assert site.horizon_end is None
