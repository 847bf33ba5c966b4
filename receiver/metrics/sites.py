"""The site-state collector: per-site gauges of the fleet, served from cached exposition text.

Site series change only when a poll completes, so each update renders that site's sample
lines once and a scrape joins cached text. The collector keeps, per family, the line of
every site shown; an update or a site going stale changes only that site's lines (stale
moments wait in a heap per group of families: those one kind of poll changes), and a
scrape joins each family's lines again only when its group changed — a join in C, not a
walk of every site in Python: at 10,000 sites under polling, whole-group rebuilds on the
scrape path took 80-100 ms of CPU a scrape, in a thread sharing the GIL with the rounds.

Live gauges (SoC, power, ratings, availability, schedule outlook) are shown only for a site
that was in the latest portfolio and whose last update is younger than `stale_after_s` (and
availability/outlook only while their own poll result is that young): a site that stops
reporting drops out instead of freezing at its last value. `cellect_site_info`, the last
update timestamp and the thresholds stay, so a DataStale rule can still see the site.
The next announced planned outage of a site is shown only while it is still ahead.
The plan's SoC trajectory (receiver.analytics.trajectory) is computed from the SoC of a
portfolio poll, so it is shown as the SoC is: live, and only for a site with a plan ahead.
Site names and coordinates appear only on `cellect_site_info`.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from receiver.cellect.enums import DowntimeType, EventReason, EventSource
from receiver.cellect.models import SiteInformation
from receiver.metrics.exposition import Family, family_text, fast_render, sample_line

P = "cellect_site_"
JOULES_PER_KWH = 3.6e6
INFO = Family(
    P + "info",
    "Master data of a site; always 1.",
    "gauge",
    ("site_id", "site_name", "country", "latitude", "longitude"),
)
LAST_UPDATE = Family(P + "last_update_timestamp_seconds", "When the site last reported.")
SOC_LOW = Family(P + "soc_low_threshold_ratio", "Effective SoCLow alert threshold.")
SOC_HIGH = Family(P + "soc_high_threshold_ratio", "Effective SoCHigh alert threshold.")
SOC = Family(P + "state_of_charge_ratio", "State of charge, 0 to 1.")
POWER = Family(P + "power_watts", "AC power; positive = discharge, negative = charge.")
# Joules, not watt-hours: promtool flags "hours" as a non-base unit (docs/decisions.md).
CAPACITY = Family(P + "energy_capacity_joules", "Installed energy capacity.")
RATED_CHARGE = Family(P + "rated_charge_power_watts", "Rated AC charge power.")
RATED_DISCHARGE = Family(P + "rated_discharge_power_watts", "Rated AC discharge power.")
AVAILABLE = Family(P + "available", "1 while the site is available, 0 while it is not.")
UNAVAILABLE = Family(
    P + "unavailable_info",
    "The open unavailability event of a site; 1.",
    "gauge",
    ("site_id", "type", "reason", "source"),
)
HORIZON = Family(
    P + "schedule_horizon_seconds",
    "How far ahead the planned schedule reaches (sites with a schedule entry known).",
)
NEAR_START = Family(
    "cellect_schedule_entries_in_progress_near_start",
    "Entries still InProgress although their start is near.",
)
NEXT_OUTAGE_START = Family(
    P + "next_planned_outage_start_timestamp_seconds",
    "When the next announced planned unavailability of the site starts.",
)
NEXT_OUTAGE_END = Family(
    P + "next_planned_outage_end_timestamp_seconds",
    "When the next announced planned unavailability of the site ends (absent: open-ended).",
)
LAST_FAILURE = Family(
    "cellect_schedule_last_implementation_failure_timestamp_seconds",
    "When the site's latest ImplementationFailed report arrived.",
)
PLANNED_SOC_MIN = Family(
    P + "planned_soc_min_ratio", "Lowest state of charge the plan leads to, 0 to 1 (forecast)."
)
PLANNED_SOC_MAX = Family(
    P + "planned_soc_max_ratio", "Highest state of charge the plan leads to, 0 to 1 (forecast)."
)
PLAN_BREACH = Family(
    P + "plan_breach_timestamp_seconds",
    "When the plan first leaves the usable SoC range (absent: it does not).",
)
PLAN_BREACH_ENTRY = Family(
    P + "plan_breach_entry_start_timestamp_seconds",
    "Start of the first entry the battery cannot deliver (absent: none).",
)
PLAN_SHORTFALL = Family(
    P + "plan_shortfall_joules",
    "AC energy of the plan, from its first undeliverable entry on, the battery cannot deliver.",
)

# Families by the update that changes them: each group's text is cached on its own, so an
# availability poll re-renders two families, not thirteen.
GROUPS: dict[str, tuple[Family, ...]] = {
    "info": (INFO, LAST_UPDATE),
    "thresholds": (SOC_LOW, SOC_HIGH),
    "state": (SOC, POWER, CAPACITY, RATED_CHARGE, RATED_DISCHARGE),
    "availability": (AVAILABLE, UNAVAILABLE),
    "outlook": (HORIZON, NEAR_START, LAST_FAILURE),
    "planned": (NEXT_OUTAGE_START, NEXT_OUTAGE_END),
    "trajectory": (
        PLANNED_SOC_MIN, PLANNED_SOC_MAX, PLAN_BREACH, PLAN_BREACH_ENTRY, PLAN_SHORTFALL,
    ),
}  # fmt: skip
FAMILIES = tuple(f for group in GROUPS.values() for f in group)


@dataclass(frozen=True)
class SiteSnapshot:
    """One site's master data and state from a portfolio poll, in the vendor's units."""

    site_id: int
    site_name: str
    country: str
    latitude: float
    longitude: float
    soc_percent: float
    power_kw: float
    capacity_kwh: float
    rated_charge_kw: float
    rated_discharge_kw: float
    updated_at: float

    @classmethod
    def from_information(cls, info: SiteInformation, updated_at: float) -> SiteSnapshot:
        return cls(
            site_id=info.site_id,
            site_name=info.site_name,
            country=info.country,
            latitude=info.latitude,
            longitude=info.longitude,
            soc_percent=info.ess_soc,
            power_kw=info.ess_power,
            capacity_kwh=info.ess_installed_energy_capacity,
            rated_charge_kw=info.ess_power_ac_rated_charge,
            rated_discharge_kw=info.ess_power_ac_rated_discharge,
            updated_at=updated_at,
        )


@dataclass(frozen=True)
class Availability:
    """A site's availability; type/reason/source describe the open event while unavailable."""

    site_id: int
    available: bool
    type: DowntimeType | None = None
    reason: EventReason | None = None
    source: EventSource | None = None


@dataclass(frozen=True)
class ScheduleOutlook:
    """A site's schedule as the monitor knows it now (ExAnte polls and webhooks)."""

    site_id: int
    horizon_s: float | None  # None: no schedule entry of the site known (not exported)
    in_progress_near_start: int
    last_failure_at: float | None = None  # the latest ImplementationFailed report, if any


@dataclass(frozen=True)
class NextPlannedOutage:
    """The next planned unavailability announced for a site (Unix seconds); `start` None:
    none is known. `end` None: announced without an end."""

    site_id: int
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class PlanForecast:
    """A site's plan forecast from the SoC measured at `measured_at` (Unix seconds);
    `soc_min` None: no plan ahead to forecast (nothing shown). Breach fields None: the
    plan stays within the usable range."""

    site_id: int
    measured_at: float = 0.0
    soc_min: float | None = None
    soc_max: float | None = None
    breach_at: float | None = None
    breach_entry_start: float | None = None
    shortfall_kwh: float | None = None


# A sample: (its family's index in FAMILIES, the label values after `site_id` — mostly
# none —, value, rendered line); the site id is its key wherever samples are kept. A part,
# the samples from one source: (samples, expires: when they may be shown no longer —
# inf, never —, live: shown only while the site is in the portfolio and fresh).
# Plain tuples on purpose: the collector holds ~17 samples a site (170,000 at 10,000
# sites), and the garbage collector stops walking a plain tuple of strings and numbers
# once it has seen one, which it never does for dataclass instances or named tuples:
# every full collection walked them all (docs/performance.md, "Metrics and memory").
_Sample = tuple[int, tuple[str, ...], float, str]
_Part = tuple[tuple[_Sample, ...], float, bool]
_FAMILY_INDEX = {family: index for index, family in enumerate(FAMILIES)}


def _sample(family: Family, site_id: int, value: float, *extra: str) -> _Sample:
    # Not the whole label tuple with str(site_id): 170,000 of those at 10,000 sites were
    # ~20 MB held for collect() alone, which rebuilds them (bench/metrics.py, RSS).
    line = sample_line(family.name, family.labels, (str(site_id), *extra), value)
    return (_FAMILY_INDEX[family], extra, value, line)


def _part(samples: tuple[_Sample, ...], expires: float = math.inf, live: bool = True) -> _Part:
    return (samples, expires, live)


def camel(member: EventReason | EventSource) -> str:
    """`SYSTEM_BMS` → `SystemBMS`, `NO_REASON` → `NoReason`: the guide's spelling."""
    return "".join(w if w in ("ESS", "BMS") else w.capitalize() for w in member.name.split("_"))


class SiteCollector(Collector):
    """Per-site gauges, updated when a poll completes and served from cached text."""

    def __init__(self, now: Callable[[], float], stale_after_s: float = 600.0) -> None:
        self._now = now
        self._stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._parts: dict[int, dict[str, _Part]] = {}
        self._portfolio: dict[int, float] = {}  # site_id → when its state goes stale
        self._thresholds: tuple[tuple[float, float], Mapping[int, tuple[float, float]]]
        self._thresholds = ((0.10, 0.95), {})
        # What the text shows, per group: each family's line by site, the moment each
        # shown live site goes stale (and a heap of them), the sites to look at again.
        self._lines: dict[int, dict[int, str]] = {i: {} for i in range(len(FAMILIES))}
        self._until: dict[str, dict[int, float]] = {group: {} for group in GROUPS}
        self._expiry: dict[str, list[tuple[float, int]]] = {group: [] for group in GROUPS}
        self._dirty: dict[str, set[int]] = {group: set() for group in GROUPS}
        self._cache: dict[str, bytes] = {}
        self._shown: Callable[[int], bool] | None = None  # None: every site

    def show_only(self, shown: Callable[[int], bool] | None) -> None:
        """Export only the sites `shown` says (a replica: those of its buckets; None:
        all). Call again whenever its answers change: every group is joined anew."""
        with self._lock:
            self._shown = shown
            self._cache.clear()

    def update_sites(self, snapshots: Iterable[SiteSnapshot]) -> None:
        """Record a completed portfolio poll; sites missing from it drop out of SoC/power.

        Availability and the schedule outlook come from their own polls (events,
        ExAnte), which keep working for a site whose box is offline: they stay live as
        long as those polls keep them fresh.
        """
        rendered = {s.site_id: self._snapshot_parts(s) for s in snapshots}
        with self._lock:
            left = self._portfolio.keys() - rendered.keys()  # membership gates "state"
            self._portfolio = {i: p["state"][1] for i, p in rendered.items()}
            for site_id, parts in rendered.items():
                site = self._parts.setdefault(site_id, {})
                site.update(parts)
                if "thresholds" not in site:
                    site["thresholds"] = self._threshold_part(site_id)
            self._touch("info", rendered)
            self._touch("state", rendered, left)
            self._touch("trajectory", rendered, left)  # gated by the portfolio as well
            self._touch("thresholds", rendered)

    def update_availability(self, states: Iterable[Availability], now: float | None = None) -> None:
        """Record availability as of `now`; sites not named keep theirs until it goes stale."""
        expires = (self._now() if now is None else now) + self._stale_after_s
        self._merge("availability", {a.site_id: _availability(a, expires) for a in states})

    def update_schedules(
        self, outlooks: Iterable[ScheduleOutlook], now: float | None = None
    ) -> None:
        """Record each site's schedule outlook as of `now` (merged like availability)."""
        expires = (self._now() if now is None else now) + self._stale_after_s
        self._merge("outlook", {o.site_id: _outlook(o, expires) for o in outlooks})

    def update_planned_outages(
        self, outages: Iterable[NextPlannedOutage], now: float | None = None
    ) -> None:
        """Record each site's next planned outage as of `now` (merged like availability)."""
        expires = (self._now() if now is None else now) + self._stale_after_s
        self._merge("planned", {o.site_id: _planned(o, expires) for o in outages})

    def update_trajectories(self, forecasts: Iterable[PlanForecast]) -> None:
        """Record each site's plan forecast; shown while the SoC it started from is."""
        stale = self._stale_after_s
        self._merge("trajectory", {f.site_id: _trajectory(f, stale) for f in forecasts})

    def set_thresholds(
        self, default: tuple[float, float], per_site: Mapping[int, tuple[float, float]]
    ) -> None:
        """Set the (low, high) SoC thresholds: `per_site` overrides `default` by site id."""
        with self._lock:
            self._thresholds = (default, dict(per_site))
            for site_id, parts in self._parts.items():
                parts["thresholds"] = self._threshold_part(site_id)
            self._touch("thresholds", self._parts)

    def render(self) -> bytes:
        """The exposition text of every site family."""
        return b"".join(self.render_parts())

    def render_parts(self) -> list[bytes]:
        """The exposition text of every site family, a group at a time (each cached: a
        group's text is joined again only when one of its sites changed or went stale)."""
        with self._lock:
            now = self._now()
            for group in GROUPS:
                if self._settle(group, now) or group not in self._cache:
                    self._cache[group] = self._join(group)
            return [self._cache[group] for group in GROUPS]

    def collect(self) -> Iterator[Metric]:
        if fast_render.get():
            return
        families = {f: GaugeMetricFamily(f.name, f.help, labels=f.labels) for f in FAMILIES}
        with self._lock:
            now = self._now()
            parts = [shown for group in GROUPS for shown in self._visible(group, now)]
        for site_id, part in parts:
            for index, extra, value, _ in part[0]:
                families[FAMILIES[index]].add_metric((str(site_id), *extra), value)
        yield from families.values()

    def describe(self) -> Iterator[Metric]:
        for f in FAMILIES:
            yield GaugeMetricFamily(f.name, f.help, labels=f.labels)

    def _merge(self, key: str, parts: dict[int, _Part]) -> None:
        with self._lock:
            for site_id, part in parts.items():
                self._parts.setdefault(site_id, {})[key] = part
            self._touch(key, parts)

    def _touch(self, group: str, *site_ids: Iterable[int]) -> None:
        """Look at these sites of `group` again at the next render (under the lock)."""
        dirty = self._dirty[group]
        for ids in site_ids:
            dirty.update(ids)

    def _settle(self, group: str, now: float) -> bool:
        """Bring the group's shown lines up to date at `now`: the sites touched since,
        and those gone stale. True when anything was looked at."""
        dirty, self._dirty[group] = self._dirty[group], set()
        if len(dirty) > len(self._parts) // 4:  # most sites (a portfolio poll): walk them all
            self._rebuild(group, now)
            return True
        heap, until = self._expiry[group], self._until[group]
        while heap and heap[0][0] <= now:
            moment, site_id = heapq.heappop(heap)
            if until.get(site_id) == moment:  # else a later update moved it
                dirty.add(site_id)
        for site_id in dirty:
            self._show(group, site_id, now)
        if len(heap) > 2 * len(until) + 64:  # moved moments pile up: keep the heap small
            self._reheap(group)
        return bool(dirty)

    def _rebuild(self, group: str, now: float) -> None:
        """The group's shown lines from scratch: every site's part, at `now`."""
        for family in GROUPS[group]:
            self._lines[_FAMILY_INDEX[family]] = {}
        self._until[group] = {}
        for site_id, parts in self._parts.items():
            part = parts.get(group)
            if part is not None:
                self._place(group, site_id, part, now)
        self._reheap(group)

    def _show(self, group: str, site_id: int, now: float) -> None:
        """Put the site's current part of `group` into the shown lines, or take it out."""
        for family in GROUPS[group]:
            self._lines[_FAMILY_INDEX[family]].pop(site_id, None)
        until = self._until[group]
        until.pop(site_id, None)
        part = self._parts.get(site_id, {}).get(group)
        if part is not None and self._place(group, site_id, part, now):
            heapq.heappush(self._expiry[group], (until[site_id], site_id))

    def _place(self, group: str, site_id: int, part: _Part, now: float) -> bool:
        """Show `part` if it is visible at `now`, noting when it goes stale; True when
        that moment is to be watched (the part is shown and not forever)."""
        visible = self._visible_until(group, site_id, part)
        if now >= visible:
            return False
        for index, _, _, line in part[0]:
            self._lines[index][site_id] = line
        if visible == math.inf:
            return False
        self._until[group][site_id] = visible
        return True

    def _reheap(self, group: str) -> None:
        """The group's heap of stale moments, afresh from the moments watched."""
        self._expiry[group] = heap = [(m, i) for i, m in self._until[group].items()]
        heapq.heapify(heap)

    def _join(self, group: str) -> bytes:
        shown = self._shown
        text = "".join(
            family_text(f, _only(self._lines[_FAMILY_INDEX[f]], shown)) for f in GROUPS[group]
        )
        return text.encode("utf-8")

    def _visible_until(self, group: str, site_id: int, part: _Part) -> float:
        """Until when the part may be shown (inf: as long as it is the site's)."""
        _, expires, live = part
        if not live:
            return math.inf
        if group in ("state", "trajectory"):  # only the portfolio poll vouches for SoC
            return min(expires, self._portfolio.get(site_id, -math.inf))
        return expires

    def _snapshot_parts(self, s: SiteSnapshot) -> dict[str, _Part]:
        place = (s.site_name, s.country, repr(float(s.latitude)), repr(float(s.longitude)))
        info = (
            _sample(INFO, s.site_id, 1.0, *place),
            _sample(LAST_UPDATE, s.site_id, s.updated_at),
        )
        state = (
            _sample(SOC, s.site_id, s.soc_percent / 100.0),
            _sample(POWER, s.site_id, s.power_kw * 1000.0),
            _sample(CAPACITY, s.site_id, s.capacity_kwh * JOULES_PER_KWH),
            _sample(RATED_CHARGE, s.site_id, s.rated_charge_kw * 1000.0),
            _sample(RATED_DISCHARGE, s.site_id, s.rated_discharge_kw * 1000.0),
        )
        expires = s.updated_at + self._stale_after_s
        return {"info": _part(info, live=False), "state": _part(state, expires)}

    def _threshold_part(self, site_id: int) -> _Part:
        default, per_site = self._thresholds
        low, high = per_site.get(site_id, default)
        samples = (_sample(SOC_LOW, site_id, low), _sample(SOC_HIGH, site_id, high))
        return _part(samples, live=False)

    def _visible(self, group: str, now: float) -> list[tuple[int, _Part]]:
        """The group's parts to show at `now`, by site (collect(): a walk of every site)."""
        shown: list[tuple[int, _Part]] = []
        exported = self._shown
        for site_id, parts in self._parts.items():
            if exported is not None and not exported(site_id):
                continue
            part = parts.get(group)
            if part is not None and now < self._visible_until(group, site_id, part):
                shown.append((site_id, part))
        return shown


def _only(lines: dict[int, str], shown: Callable[[int], bool] | None) -> Iterable[str]:
    """The lines of the sites `shown` (all of them when None)."""
    if shown is None:
        return lines.values()
    return [line for site_id, line in lines.items() if shown(site_id)]


def _availability(a: Availability, expires: float) -> _Part:
    samples = [_sample(AVAILABLE, a.site_id, 1.0 if a.available else 0.0)]
    if not a.available:
        event = (
            a.type.value if a.type else "",
            camel(a.reason) if a.reason else "",
            camel(a.source) if a.source else "",
        )
        samples.append(_sample(UNAVAILABLE, a.site_id, 1.0, *event))
    return _part(tuple(samples), expires)


def _outlook(o: ScheduleOutlook, expires: float) -> _Part:
    samples = [_sample(NEAR_START, o.site_id, float(o.in_progress_near_start))]
    if o.horizon_s is not None:
        samples.append(_sample(HORIZON, o.site_id, max(0.0, o.horizon_s)))
    if o.last_failure_at is not None:
        samples.append(_sample(LAST_FAILURE, o.site_id, o.last_failure_at))
    return _part(tuple(samples), expires)


def _planned(o: NextPlannedOutage, expires: float) -> _Part:
    if o.start is None:
        return _part((), expires)
    samples = [_sample(NEXT_OUTAGE_START, o.site_id, o.start)]
    if o.end is not None:
        samples.append(_sample(NEXT_OUTAGE_END, o.site_id, o.end))
    # Gone at its start even between two events polls: from then on it is no longer
    # "next" (cellect_site_available and unavailable_info say it is running).
    return _part(tuple(samples), min(expires, o.start))


def _trajectory(f: PlanForecast, stale_after_s: float) -> _Part:
    if f.soc_min is None or f.soc_max is None:
        return _part(())
    samples = [
        _sample(PLANNED_SOC_MIN, f.site_id, f.soc_min),
        _sample(PLANNED_SOC_MAX, f.site_id, f.soc_max),
    ]
    if f.breach_at is not None:
        samples.append(_sample(PLAN_BREACH, f.site_id, f.breach_at))
    if f.breach_entry_start is not None:
        samples.append(_sample(PLAN_BREACH_ENTRY, f.site_id, f.breach_entry_start))
    if f.shortfall_kwh is not None:
        samples.append(_sample(PLAN_SHORTFALL, f.site_id, f.shortfall_kwh * JOULES_PER_KWH))
    # Live as the SoC it was computed from: gone when that goes stale (or the site
    # leaves the portfolio), back with the next forecast.
    return _part(tuple(samples), f.measured_at + stale_after_s)
