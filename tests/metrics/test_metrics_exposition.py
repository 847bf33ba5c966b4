"""The /metrics body as a whole: valid text format, escaping, promtool, equal to a naive rebuild."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from receiver.cellect.clock import Clock
from receiver.cellect.enums import DowntimeType, EventReason, EventSource, ImplementationStatus
from receiver.metrics.registry import Metrics, render_metrics
from receiver.metrics.sites import Availability, ScheduleOutlook, SiteSnapshot
from tests.support.tools import require_tool

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NASTY_NAMES = ['Say "hi"', "back\\slash", "two\nlines", "Zürich ☀ 東京", "tab\there", "cr\rlf"]
STATUS_NAMES = {s: s.name.lower() for s in ImplementationStatus}
Samples = set[tuple[str, frozenset[tuple[str, str]], float]]


class Fleet:
    """Synthetic inputs, applied to our Metrics and to a naive labelled-gauge registry alike."""

    def __init__(self, now: float, count: int = 40) -> None:
        rng = random.Random(7)
        self.snapshots = [
            SiteSnapshot(
                i,
                NASTY_NAMES[i % len(NASTY_NAMES)] + str(i),
                "DE",
                rng.uniform(45, 55),
                rng.uniform(5, 15),
                rng.uniform(0, 100),
                rng.uniform(-90, 90),
                200.0,
                100.0,
                100.0,
                now - rng.uniform(0, 300),
            )
            for i in range(1, count + 1)
        ]
        self.availability = [
            Availability(i, False, DowntimeType.PLANNED, EventReason.MAINTENANCE, EventSource.ESS)
            if i % 5 == 0
            else Availability(i, True)
            for i in range(1, count + 1)
        ]
        self.outlooks = [ScheduleOutlook(i, 900.0 * i, i % 3) for i in range(1, count + 1)]
        self.thresholds = {i: (0.25, 0.75) for i in range(1, count + 1, 4)}
        self.events = [(rng.randint(1, count), rng.choice(list(STATUS_NAMES))) for _ in range(99)]

    def apply(self, metrics: Metrics) -> None:
        metrics.update_sites(self.snapshots)
        metrics.update_availability(self.availability)
        metrics.update_schedules(self.outlooks)
        metrics.set_thresholds((0.1, 0.95), self.thresholds)
        for site_id, status in self.events:
            metrics.schedule_status(site_id, status)

    def naive(self) -> CollectorRegistry:
        """The same series as plain labelled Gauges, converted by hand."""
        registry = CollectorRegistry()
        site_labels = ("site_id", "site_name", "country", "latitude", "longitude")
        info = Gauge("cellect_site_info", "-", site_labels, registry=registry)
        gauges = {
            name: Gauge(f"cellect_site_{name}", "-", ["site_id"], registry=registry)
            for name in (
                "last_update_timestamp_seconds",
                "soc_low_threshold_ratio",
                "soc_high_threshold_ratio",
                "state_of_charge_ratio",
                "power_watts",
                "energy_capacity_joules",
                "rated_charge_power_watts",
                "rated_discharge_power_watts",
                "available",
                "schedule_horizon_seconds",
            )
        }
        for s in self.snapshots:
            info.labels(s.site_id, s.site_name, s.country, s.latitude, s.longitude).set(1)
            low, high = self.thresholds.get(s.site_id, (0.1, 0.95))
            for name, val in (
                ("last_update_timestamp_seconds", s.updated_at),
                ("soc_low_threshold_ratio", low),
                ("soc_high_threshold_ratio", high),
                ("state_of_charge_ratio", s.soc_percent / 100),
                ("power_watts", s.power_kw * 1000),
                ("energy_capacity_joules", s.capacity_kwh * 3_600_000),
                ("rated_charge_power_watts", s.rated_charge_kw * 1000),
                ("rated_discharge_power_watts", s.rated_discharge_kw * 1000),
            ):
                gauges[name].labels(s.site_id).set(val)
        self._naive_events(registry, gauges["available"])
        near = Gauge(
            "cellect_schedule_entries_in_progress_near_start", "-", ["site_id"], registry=registry
        )
        for o in self.outlooks:
            gauges["schedule_horizon_seconds"].labels(o.site_id).set(o.horizon_s)
            near.labels(o.site_id).set(o.in_progress_near_start)
        self._naive_counters(registry)
        return registry

    def _naive_events(self, registry: CollectorRegistry, available: Gauge) -> None:
        info = Gauge(
            "cellect_site_unavailable_info",
            "-",
            ["site_id", "type", "reason", "source"],
            registry=registry,
        )
        for a in self.availability:
            available.labels(a.site_id).set(1 if a.available else 0)
            if not a.available:
                info.labels(a.site_id, "Planned", "Maintenance", "ESS").set(1)

    def _naive_counters(self, registry: CollectorRegistry) -> None:
        entries = Gauge(
            "cellect_schedule_entries_total", "-", ["site_id", "status"], registry=registry
        )
        failures = Gauge(
            "cellect_schedule_implementation_failures_total", "-", ["site_id"], registry=registry
        )
        for s in self.snapshots:
            failures.labels(s.site_id)
            for status in STATUS_NAMES.values():
                entries.labels(s.site_id, status)
        for site_id, status in self.events:
            entries.labels(site_id, STATUS_NAMES[status]).inc()
            if status is ImplementationStatus.IMPLEMENTATION_FAILED:
                failures.labels(site_id).inc()


def samples(body: bytes, names: Iterable[str] | None = None) -> Samples:
    wanted = None if names is None else set(names)
    return {
        (s.name, frozenset(s.labels.items()), s.value)
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for s in family.samples
        if wanted is None or s.name in wanted
    }


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(START)


@pytest.fixture
def fleet(clock: Clock) -> Fleet:
    return Fleet(clock.timestamp())


@pytest.fixture
def metrics(clock: Clock, fleet: Fleet) -> Metrics:
    metrics = Metrics(CollectorRegistry(), now=clock.timestamp, stale_after_s=600.0)
    fleet.apply(metrics)
    metrics.observe_webhook("accepted", 0.02)
    metrics.observe_api("ex_ante", 200, 0.3)
    metrics.set_refresh_token_expiry(clock.timestamp() + 86400)
    return metrics


def test_cached_output_equals_a_naive_labelled_gauge_registry(
    metrics: Metrics, fleet: Fleet
) -> None:
    """Every per-site sample of /metrics equals that of naive Gauges holding the same values."""
    naive = samples(generate_latest(fleet.naive()))
    ours = samples(render_metrics(metrics), {name for name, _, _ in naive})
    assert ours == naive


def test_fast_path_equals_the_ordinary_collect_path(metrics: Metrics, clock: Clock) -> None:
    """render_metrics serves the same samples as generate_latest over the whole registry."""
    assert samples(render_metrics(metrics)) == samples(generate_latest(metrics.registry))
    clock.advance(450)  # some sites, updated up to 300 s before START, are now stale
    fast = samples(render_metrics(metrics))
    assert fast == samples(generate_latest(metrics.registry))
    soc = {labels for name, labels, _ in fast if name == "cellect_site_state_of_charge_ratio"}
    assert 0 < len(soc) < 40


def test_each_family_has_one_help_and_one_type(metrics: Metrics) -> None:
    """No family is declared twice between the registry part and the cached part."""
    lines = render_metrics(metrics).decode().splitlines()
    types = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    helps = [line.split()[2] for line in lines if line.startswith("# HELP ")]
    assert len(types) == len(set(types)) == len(helps) == len(set(helps))


def test_nasty_site_names_survive_the_round_trip(metrics: Metrics, fleet: Fleet) -> None:
    """Quotes, backslashes, newlines and unicode in site names parse back unchanged."""
    parsed = samples(render_metrics(metrics), ["cellect_site_info"])
    names = {dict(labels)["site_name"] for _, labels, _ in parsed}
    assert names == {s.site_name for s in fleet.snapshots}


def test_unencodable_site_name_does_not_break_the_scrape(clock: Clock) -> None:
    """A lone surrogate (legal in JSON) becomes '?' instead of failing the whole body."""
    metrics = Metrics(CollectorRegistry(), now=clock.timestamp)
    now = clock.timestamp()
    metrics.update_sites([SiteSnapshot(1, "bad\ud800name", "DE", 1, 2, 3, 4, 5, 6, 7, now)])
    parsed = samples(render_metrics(metrics), ["cellect_site_info"])
    assert {dict(labels)["site_name"] for _, labels, _ in parsed} == {"bad?name"}


def test_promtool_check_metrics_reports_nothing(metrics: Metrics) -> None:
    """`promtool check metrics` finds no problem in the exposition of a populated instance."""
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render_metrics(metrics),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
