"""Delivered against planned energy per site: two counters and the tracking-error gauge.

`cellect_site_energy_planned_joules_total{site_id}` and
`cellect_site_energy_delivered_joules_total{site_id}` count the magnitudes (|kWh| in
joules, the base unit) of each entry's planned and delivered energy as the entries are
computed (receiver.fleet.tracking) — throughput, for rates and "plan vs delivered"
panels; entries whose delivered energy is unknown are counted in neither. Like every
site counter they are each process's own count (a new series on a bucket's next owner).
`cellect_site_tracking_error_ratio{site_id}` is Σ|delivered − planned| / Σ|planned| over
the site's last `CELLECT_TRACKING_WINDOW_ENTRIES` entries (absent until the site has one
with energy planned), the same on every replica. Text is rendered per site when it
changes, like the schedule counters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from receiver.metrics.exposition import Family, family_text, fast_render, sample_line

JOULES_PER_KWH = 3.6e6
PLANNED = Family(
    "cellect_site_energy_planned_joules_total",
    "Energy the schedule asked of the site (|planned| per entry that has run).",
    "counter",
)
DELIVERED = Family(
    "cellect_site_energy_delivered_joules_total",
    "Energy the site delivered in its entries that have run (|delivered| per entry).",
    "counter",
)
TRACKING = Family(
    "cellect_site_tracking_error_ratio",
    "sum(|delivered - planned|) / sum(|planned|) over the site's last "
    "CELLECT_TRACKING_WINDOW_ENTRIES entries.",
)


class EnergyCollector(Collector):
    """Per-site energy counters and tracking error, served from cached text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._planned: dict[int, float] = {}
        self._delivered: dict[int, float] = {}
        self._error: dict[int, float] = {}
        self._cache: bytes | None = None
        self._shown: Callable[[int], bool] | None = None

    def show_only(self, shown: Callable[[int], bool] | None) -> None:
        """Export only the sites `shown` says (see SiteCollector.show_only)."""
        with self._lock:
            self._shown, self._cache = shown, None

    def count(self, site_id: int, planned_kwh: float, delivered_kwh: float) -> None:
        """One entry's energy: add the magnitudes to the site's counters."""
        with self._lock:
            planned = self._planned.get(site_id, 0.0) + abs(planned_kwh) * JOULES_PER_KWH
            delivered = self._delivered.get(site_id, 0.0) + abs(delivered_kwh) * JOULES_PER_KWH
            self._planned[site_id], self._delivered[site_id] = planned, delivered
            self._cache = None

    def set_error(self, site_id: int, ratio: float | None) -> None:
        """The site's tracking error now (None: no series)."""
        with self._lock:
            if ratio is None:
                self._error.pop(site_id, None)
            else:
                self._error[site_id] = ratio
            self._cache = None

    def render(self) -> bytes:
        with self._lock:
            if self._cache is None:
                parts = [
                    family_text(family, (sample_line(family.name, family.labels, (str(s),), v)
                                         for s, v in sorted(values.items()) if self._visible(s)))
                    for family, values in self._families_values()
                ]  # fmt: skip
                self._cache = "".join(parts).encode("utf-8")
            return self._cache

    def collect(self) -> Iterator[Metric]:
        if fast_render.get():
            return
        with self._lock:
            for family, values in self._families_values():
                metric: CounterMetricFamily | GaugeMetricFamily
                if family.type == "counter":
                    metric = CounterMetricFamily(family.name, family.help, labels=family.labels)
                else:
                    metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
                for site_id, value in values.items():
                    if self._visible(site_id):
                        metric.add_metric((str(site_id),), value)
                yield metric

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(PLANNED.name, PLANNED.help, labels=PLANNED.labels)
        yield CounterMetricFamily(DELIVERED.name, DELIVERED.help, labels=DELIVERED.labels)
        yield GaugeMetricFamily(TRACKING.name, TRACKING.help, labels=TRACKING.labels)

    def _families_values(self) -> list[tuple[Family, dict[int, float]]]:
        return [(PLANNED, self._planned), (DELIVERED, self._delivered), (TRACKING, self._error)]

    def _visible(self, site_id: int) -> bool:
        return self._shown is None or self._shown(site_id)
