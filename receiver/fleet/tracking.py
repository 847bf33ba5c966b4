"""Each site's tracking of its plan: the delivered against planned energy of its last
entries, the counters and the tracking-error gauge (receiver.metrics.energy).

Fed by the energy job (receiver.fleet.energy_job) with the entries it computed, by the
fleet feed with those other replicas computed, and at start from the history
(`restore`, no counting: counters start at 0 as counters do). Every replica keeps every
site's window, so any owner exports the same gauge and the alert leader judges them all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime

from receiver.analytics.delivery import tracking_error
from receiver.metrics.registry import Metrics

# (site, the entry's end, planned kWh, delivered kWh or None)
Computed = tuple[int, datetime, float, float | None]


class Tracking:
    """The last `window` entries of every site and their tracking error."""

    def __init__(self, metrics: Metrics, window: int) -> None:
        self.metrics, self.window = metrics, window
        self._entries: dict[int, deque[tuple[float, float | None]]] = {}
        self._latest: dict[int, datetime] = {}
        self._errors: dict[int, float] = {}

    def add(self, rows: Iterable[Computed], *, count: bool = True) -> None:
        """Entries computed (in order of their end): into the windows and, with `count`,
        the counters."""
        touched: set[int] = set()
        for site_id, end, planned, delivered in rows:
            window = self._entries.get(site_id)
            if window is None:
                window = self._entries[site_id] = deque(maxlen=self.window)
            window.append((planned, delivered))
            latest = self._latest.get(site_id)
            self._latest[site_id] = end if latest is None else max(latest, end)
            touched.add(site_id)
            if count and delivered is not None:
                self.metrics.energy.count(site_id, planned, delivered)
        for site_id in touched:
            error = tracking_error(self._entries[site_id])
            if error is None:
                self._errors.pop(site_id, None)
            else:
                self._errors[site_id] = error
            self.metrics.energy.set_error(site_id, error)

    def restore(self, rows: Iterable[Computed]) -> None:
        """The windows as the history has them (after a restart): not counted again."""
        self.add(rows, count=False)

    def error(self, site_id: int) -> float | None:
        return self._errors.get(site_id)

    def latest(self, site_id: int) -> datetime | None:
        """The end of the newest entry in the site's window."""
        return self._latest.get(site_id)
