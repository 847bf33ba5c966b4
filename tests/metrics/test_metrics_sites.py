"""Site-state gauges and schedule counters: units, staleness, portfolio membership, events."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from receiver.cellect.clock import Clock
from receiver.cellect.enums import DowntimeType, EventReason, EventSource, ImplementationStatus
from receiver.cellect.models import SiteInformation
from receiver.metrics.registry import Metrics, render_metrics
from receiver.metrics.sites import Availability, ScheduleOutlook, SiteSnapshot

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
STALE_AFTER = 600.0
SITE = {"site_id": "7"}


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(START)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, clock: Clock) -> Metrics:
    return Metrics(registry, now=clock.timestamp, stale_after_s=STALE_AFTER)


def snapshot(site_id: int, updated_at: float, soc: float = 55.0) -> SiteSnapshot:
    return SiteSnapshot(
        site_id=site_id,
        site_name=f"Site {site_id}",
        country="DE",
        latitude=52.52,
        longitude=13.405,
        soc_percent=soc,
        power_kw=-3.2,
        capacity_kwh=100.0,
        rated_charge_kw=50.0,
        rated_discharge_kw=60.0,
        updated_at=updated_at,
    )


def value(registry: CollectorRegistry, name: str, labels: dict[str, str] = SITE) -> float | None:
    """A sample as the registry sees it (the ordinary collect() path)."""
    return registry.get_sample_value(name, labels)


def test_site_gauges_convert_vendor_units_to_base_units(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """Percent becomes a ratio, kW becomes W (sign kept), kWh becomes J."""
    metrics.update_sites([snapshot(7, clock.timestamp())])
    assert value(registry, "cellect_site_state_of_charge_ratio") == pytest.approx(0.55)
    assert value(registry, "cellect_site_power_watts") == pytest.approx(-3200.0)
    assert value(registry, "cellect_site_energy_capacity_joules") == pytest.approx(3.6e8)
    assert value(registry, "cellect_site_rated_charge_power_watts") == pytest.approx(50_000.0)
    assert value(registry, "cellect_site_rated_discharge_power_watts") == pytest.approx(60_000.0)
    assert value(registry, "cellect_site_last_update_timestamp_seconds") == clock.timestamp()


def test_site_info_carries_name_and_coordinates(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """Names and coordinates are labels of cellect_site_info only, whose value is 1."""
    metrics.update_sites([snapshot(7, clock.timestamp())])
    labels = {
        **SITE,
        "site_name": "Site 7",
        "country": "DE",
        "latitude": "52.52",
        "longitude": "13.405",
    }
    assert value(registry, "cellect_site_info", labels) == 1
    body = render_metrics(metrics).decode()
    other_lines = [line for line in body.splitlines() if "site_name=" in line]
    assert all(line.startswith("cellect_site_info{") for line in other_lines)


def test_snapshot_from_the_vendor_model(clock: Clock) -> None:
    """SiteSnapshot.from_information maps the SiteInformation payload field by field."""
    info = SiteInformation.model_validate(
        {
            "siteId": 3,
            "siteName": "Drei",
            "country": "AT",
            "latitude": 48.2,
            "longitude": 16.37,
            "essSoC": 40,
            "essPower": 1.5,
            "essInstalledEnergyCapacity": 200,
            "essPowerACRatedDischarge": 90,
            "essPowerACRatedCharge": 80,
        }
    )
    snap = SiteSnapshot.from_information(info, updated_at=clock.timestamp())
    assert snap == SiteSnapshot(3, "Drei", "AT", 48.2, 16.37, 40, 1.5, 200, 80, 90, snap.updated_at)


def test_a_stale_site_drops_out_of_live_gauges_but_keeps_info(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """Past stale_after_s without an update, live gauges vanish; info and last update stay."""
    metrics.update_sites([snapshot(7, clock.timestamp())])
    metrics.update_availability([Availability(7, available=True)])
    metrics.update_schedules([ScheduleOutlook(7, 7200.0, 0)])
    render_metrics(metrics)  # fills the cache that staleness must invalidate
    clock.advance(STALE_AFTER + 1)
    body = render_metrics(metrics).decode()
    for name in ("state_of_charge_ratio", "power_watts", "available", "schedule_horizon_seconds"):
        assert value(registry, f"cellect_site_{name}") is None
        assert f"cellect_site_{name}{{" not in body
    assert 'cellect_site_info{country="DE"' in body
    assert value(registry, "cellect_site_last_update_timestamp_seconds") is not None


def test_a_fresh_update_brings_a_stale_site_back(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """A site that reports again after going stale shows its new state."""
    metrics.update_sites([snapshot(7, clock.timestamp(), soc=55.0)])
    clock.advance(STALE_AFTER * 2)
    render_metrics(metrics)
    metrics.update_sites([snapshot(7, clock.timestamp(), soc=20.0)])
    assert (
        'cellect_site_state_of_charge_ratio{site_id="7"} 0.2\n' in render_metrics(metrics).decode()
    )


def test_a_site_missing_from_the_latest_portfolio_drops_out(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """A site absent from the latest portfolio loses SoC and power, keeps its info.

    Its availability and schedule outlook come from their own polls (which keep working
    for a site whose box is offline): they stay until they go stale on their own.
    """
    now = clock.timestamp()
    metrics.update_sites([snapshot(7, now), snapshot(8, now)])
    metrics.update_availability([Availability(7, True), Availability(8, True)])
    metrics.update_schedules([ScheduleOutlook(7, 3600.0, 1)])
    metrics.update_sites([snapshot(8, now)])
    assert value(registry, "cellect_site_state_of_charge_ratio") is None
    assert value(registry, "cellect_site_power_watts") is None
    assert value(registry, "cellect_site_last_update_timestamp_seconds") == now
    assert value(registry, "cellect_site_available") == 1
    assert value(registry, "cellect_schedule_entries_in_progress_near_start") == 1
    clock.advance(STALE_AFTER + 1)
    assert value(registry, "cellect_site_available") is None
    assert value(registry, "cellect_schedule_entries_in_progress_near_start") is None
    assert "cellect_site_available{" not in render_metrics(metrics).decode()


def test_unavailable_info_only_while_unavailable(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """The event series exists, with the guide's names, only while the site is unavailable."""
    metrics.update_sites([snapshot(7, clock.timestamp())])
    event = Availability(
        7, False, DowntimeType.UNPLANNED, EventReason.OUTAGE, EventSource.SYSTEM_BMS
    )
    metrics.update_availability([event])
    labels = {**SITE, "type": "Unplanned", "reason": "Outage", "source": "SystemBMS"}
    assert value(registry, "cellect_site_unavailable_info", labels) == 1
    assert value(registry, "cellect_site_available") == 0
    metrics.update_availability([Availability(7, True)])
    assert value(registry, "cellect_site_unavailable_info", labels) is None
    assert "cellect_site_unavailable_info{" not in render_metrics(metrics).decode()
    assert value(registry, "cellect_site_available") == 1


def test_availability_goes_stale_on_its_own(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """Availability not refreshed for stale_after_s vanishes even while the site reports."""
    metrics.update_sites([snapshot(7, clock.timestamp())])
    metrics.update_availability([Availability(7, True)])
    clock.advance(STALE_AFTER)
    metrics.update_sites([snapshot(7, clock.timestamp())])
    assert value(registry, "cellect_site_available") is None
    assert value(registry, "cellect_site_state_of_charge_ratio") is not None


def test_schedule_outlook_gauges(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """Horizon (never negative) and near-start InProgress counts come from the outlook."""
    metrics.update_sites([snapshot(7, clock.timestamp()), snapshot(8, clock.timestamp())])
    metrics.update_schedules([ScheduleOutlook(7, 5400.0, 2), ScheduleOutlook(8, -30.0, 0)])
    assert value(registry, "cellect_site_schedule_horizon_seconds") == 5400
    assert value(registry, "cellect_schedule_entries_in_progress_near_start") == 2
    assert value(registry, "cellect_site_schedule_horizon_seconds", {"site_id": "8"}) == 0


def test_thresholds_default_and_per_site(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """Each known site exports its effective thresholds, new sites included."""
    metrics.set_thresholds((0.1, 0.9), {8: (0.3, 0.7)})
    metrics.update_sites([snapshot(7, clock.timestamp()), snapshot(8, clock.timestamp())])
    assert value(registry, "cellect_site_soc_low_threshold_ratio") == 0.1
    assert value(registry, "cellect_site_soc_high_threshold_ratio") == 0.9
    assert value(registry, "cellect_site_soc_low_threshold_ratio", {"site_id": "8"}) == 0.3
    metrics.set_thresholds((0.2, 0.8), {})
    assert value(registry, "cellect_site_soc_high_threshold_ratio", {"site_id": "8"}) == 0.8


def test_schedule_counters_exist_at_zero_per_known_site(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    """A site seen in the portfolio has every status series and the failure counter at 0."""
    metrics.update_sites([snapshot(7, clock.timestamp())])
    for status in ("in_progress", "implemented", "implementation_failed", "deleted", "overwritten"):
        assert value(registry, "cellect_schedule_entries_total", {**SITE, "status": status}) == 0
    assert value(registry, "cellect_schedule_implementation_failures_total") == 0


def test_schedule_statuses_are_counted(metrics: Metrics, registry: CollectorRegistry) -> None:
    """Each status transition counts once; ImplementationFailed also counts as a failure."""
    metrics.ensure_site(7)
    metrics.schedule_status(7, ImplementationStatus.IN_PROGRESS)
    metrics.schedule_status(7, ImplementationStatus.IN_PROGRESS)
    metrics.schedule_status(7, ImplementationStatus.IMPLEMENTATION_FAILED)
    entries = "cellect_schedule_entries_total"
    assert value(registry, entries, {**SITE, "status": "in_progress"}) == 2
    assert value(registry, entries, {**SITE, "status": "implementation_failed"}) == 1
    assert value(registry, "cellect_schedule_implementation_failures_total") == 1
    body = render_metrics(metrics).decode()
    assert 'cellect_schedule_implementation_failures_total{site_id="7"} 1.0\n' in body


def test_a_replica_exports_only_the_sites_of_its_buckets() -> None:
    """Site series (gauges and schedule counters) of the sites `export_only` says; when
    its answer changes (buckets moved), the next scrape follows; None: every site."""
    metrics = Metrics(CollectorRegistry(), now=lambda: 1_000_000.0)
    metrics.update_sites(
        SiteSnapshot(i, f"Site {i}", "DE", 52.5, 13.4, 40.0, -2.0, 100.0, 50.0, 60.0, 1_000_000.0)
        for i in (1, 2, 3)
    )
    metrics.schedule_status(2, ImplementationStatus.IMPLEMENTATION_FAILED)

    def sites_in(text: bytes) -> set[str]:
        return set(re.findall(r'site_id="(\d+)"', text.decode()))

    assert sites_in(render_metrics(metrics)) == {"1", "2", "3"}
    mine = {1}
    metrics.export_only(mine.__contains__)
    assert sites_in(render_metrics(metrics)) == {"1"}
    assert sites_in(generate_latest(metrics.registry)) == {"1"}
    mine = {2, 3}
    metrics.export_only(mine.__contains__)
    text = render_metrics(metrics)
    assert sites_in(text) == {"2", "3"}
    assert 'cellect_schedule_implementation_failures_total{site_id="2"} 1.0' in text.decode()
    metrics.export_only(None)
    assert sites_in(render_metrics(metrics)) == {"1", "2", "3"}
