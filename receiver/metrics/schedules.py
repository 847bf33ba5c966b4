"""Per-site schedule counters (`cellect_schedule_entries_total{site_id,status}` and
`cellect_schedule_implementation_failures_total{site_id}`), served from cached text.

At fleet size these are the largest families (six series per site), and webhooks change
only a few sites between two scrapes, so a scrape re-renders only the sites whose counts
changed since the last one and re-joins the cached lines (and only if anything changed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from receiver.cellect.enums import ImplementationStatus
from receiver.metrics.exposition import Family, family_text, fast_render, sample_line

ENTRIES = Family(
    "cellect_schedule_entries_total",
    "Schedule entries reported by webhook or poll, by site and status.",
    "counter",
    ("site_id", "status"),
)
FAILURES = Family(
    "cellect_schedule_implementation_failures_total",
    "Schedule entries the Cellect Box failed to implement.",
    "counter",
)
STATUSES = tuple(ImplementationStatus)


def status_label(status: ImplementationStatus) -> str:
    """`IMPLEMENTATION_FAILED` → `implementation_failed`."""
    return status.name.lower()


class ScheduleCounters(Collector):
    """Counts of schedule entry outcomes per site; every site's children exist from 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, dict[ImplementationStatus, float]] = {}
        self._lines: dict[int, tuple[str, str]] = {}  # site → (entries lines, failures line)
        self._dirty: set[int] = set()  # sites counted since their lines were last rendered
        self._cache: bytes | None = None
        self._shown: Callable[[int], bool] | None = None  # None: every site

    def show_only(self, shown: Callable[[int], bool] | None) -> None:
        """Export only the sites `shown` says (see SiteCollector.show_only)."""
        with self._lock:
            self._shown = shown
            self._cache = None

    def ensure_site(self, site_id: int) -> None:
        """Create the site's series at 0 so a first failure is visible as an increase."""
        with self._lock:
            if site_id not in self._counts:
                self._counts[site_id] = dict.fromkeys(STATUSES, 0.0)
                self._render_site(site_id)

    def count(self, site_id: int, status: ImplementationStatus, amount: float = 1.0) -> None:
        """Count `amount` entries of `site_id` reported in `status`."""
        self.ensure_site(site_id)
        with self._lock:
            self._counts[site_id][status] += amount
            # Rendered at the next scrape: a burst of webhooks costs one render per site.
            self._dirty.add(site_id)
            self._cache = None

    def render(self) -> bytes:
        with self._lock:
            for site_id in self._dirty:
                self._render_site(site_id)
            self._dirty.clear()
            if self._cache is None:
                shown = self._shown
                lines = [
                    pair for site_id, pair in self._lines.items() if shown is None or shown(site_id)
                ]
                entries = family_text(ENTRIES, (e for e, _ in lines))
                failures = family_text(FAILURES, (f for _, f in lines))
                self._cache = (entries + failures).encode("utf-8")
            return self._cache

    def collect(self) -> Iterator[Metric]:
        if fast_render.get():
            return
        entries, failures = self._families()
        with self._lock:
            shown = self._shown
            for site_id, counts in self._counts.items():
                if shown is not None and not shown(site_id):
                    continue
                for status, value in counts.items():
                    entries.add_metric((str(site_id), status_label(status)), value)
                failed = counts[ImplementationStatus.IMPLEMENTATION_FAILED]
                failures.add_metric((str(site_id),), failed)
        yield entries
        yield failures

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily(ENTRIES.name, ENTRIES.help, labels=ENTRIES.labels),
            CounterMetricFamily(FAILURES.name, FAILURES.help, labels=FAILURES.labels),
        )

    def _render_site(self, site_id: int) -> None:
        """Re-render one site's lines (the lock is held); the joined text is rebuilt lazily."""
        counts = self._counts[site_id]
        site = str(site_id)
        entries = "".join(
            sample_line(ENTRIES.name, ENTRIES.labels, (site, status_label(s)), counts[s])
            for s in STATUSES
        )
        failed = counts[ImplementationStatus.IMPLEMENTATION_FAILED]
        failures = sample_line(FAILURES.name, FAILURES.labels, (site,), failed)
        self._lines[site_id] = (entries, failures)
        self._cache = None
