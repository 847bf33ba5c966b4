"""Delivered against planned in /metrics: counters in joules, the tracking-error gauge,
the same text on both render paths, clean for promtool, one replica's sites only."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from receiver.fleet.tracking import Tracking
from receiver.metrics.registry import Metrics, render_metrics
from tests.support.tools import require_tool

END = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


def _metrics() -> Metrics:
    metrics = Metrics(CollectorRegistry())
    tracking = Tracking(metrics, window=2)
    tracking.add([(1, END, 25.0, 20.0), (1, END, -10.0, -8.0), (2, END, 5.0, None)])
    tracking.add([(1, END, 10.0, 10.0)])
    return metrics


def test_counters_count_magnitudes_and_the_gauge_the_window() -> None:
    """|planned| and |delivered| in joules (unknown delivered counted in neither); the
    error over the last two entries only; no error for a site with nothing known."""
    metrics = _metrics()
    get = metrics.registry.get_sample_value
    assert get("cellect_site_energy_planned_joules_total", {"site_id": "1"}) == 45.0 * 3.6e6
    assert get("cellect_site_energy_delivered_joules_total", {"site_id": "1"}) == 38.0 * 3.6e6
    assert get("cellect_site_tracking_error_ratio", {"site_id": "1"}) == 2.0 / 20.0
    assert get("cellect_site_energy_planned_joules_total", {"site_id": "2"}) is None
    assert get("cellect_site_tracking_error_ratio", {"site_id": "2"}) is None


def test_fast_render_equals_the_ordinary_collect_path() -> None:
    """The cached text is what prometheus_client would write for the same families."""
    metrics = _metrics()
    fast = render_metrics(metrics).decode()
    slow = generate_latest(metrics.registry).decode()
    for name in ("cellect_site_energy_planned_joules_total", "cellect_site_tracking_error_ratio"):
        assert [line for line in fast.splitlines() if name in line] == [
            line for line in slow.splitlines() if name in line
        ]


def test_promtool_check_metrics_is_clean() -> None:
    """`promtool check metrics` finds nothing to say about the new families."""
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=render_metrics(_metrics()),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""


def test_a_replica_exports_only_its_sites() -> None:
    """With `export_only`, another replica's site has no energy series here."""
    metrics = _metrics()
    metrics.export_only(lambda site_id: site_id != 1)
    text = render_metrics(metrics).decode()
    assert 'site_id="1"' not in text
