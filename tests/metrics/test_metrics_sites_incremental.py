"""The site collector's incremental text against a walk of every site.

`SiteCollector.render()` keeps each family's lines by site and changes only the sites an
update touched or whose data went stale; `collect()` (what prometheus_client's
`generate_latest` reads) still walks every site from scratch. Any sequence of polls,
thresholds, passing time and changes of the sites exported (a replica's buckets moving)
must leave both showing the same samples.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from receiver.cellect.enums import DowntimeType, EventReason, EventSource
from receiver.metrics.sites import (
    Availability,
    NextPlannedOutage,
    PlanForecast,
    ScheduleOutlook,
    SiteCollector,
    SiteSnapshot,
)

STALE_AFTER = 600.0
SITES = st.lists(st.integers(1, 6), max_size=6, unique=True)


def _snapshot(site_id: int, updated_at: float) -> SiteSnapshot:
    return SiteSnapshot(
        site_id, f"Site {site_id}", "DE", 52.5, 13.4, 40.0 + site_id, -2.0, 100.0, 50.0, 60.0,
        updated_at,
    )  # fmt: skip


def _lines(text: bytes) -> list[str]:
    return sorted(line for line in text.decode().splitlines() if not line.startswith("#"))


class Moment:
    def __init__(self) -> None:
        self.now = 1_000_000.0


Step = tuple[str, list[int], float]
KINDS = [
    "portfolio", "available", "unavailable", "outlook", "outage", "thresholds", "time",
    "forecast", "breach", "no plan", "exported",
]  # fmt: skip
SECONDS = [0.0, 1.0, 299.0, 300.0, 600.0, 601.0, 1800.0]
STEPS = st.lists(st.tuples(st.sampled_from(KINDS), SITES, st.sampled_from(SECONDS)), max_size=25)


def _apply(collector: SiteCollector, moment: Moment, step: Step) -> None:
    kind, site_ids, seconds = step
    now = moment.now
    if kind == "portfolio":  # updated up to `seconds` ago: some arrive nearly stale
        collector.update_sites(_snapshot(i, now - seconds) for i in site_ids)
    elif kind == "available":
        collector.update_availability((Availability(i, True) for i in site_ids), now - seconds)
    elif kind == "unavailable":
        event = (DowntimeType.UNPLANNED, EventReason.NO_REASON, EventSource.SYSTEM_BMS)
        collector.update_availability(Availability(i, False, *event) for i in site_ids)
    elif kind == "outlook":
        outlooks = (ScheduleOutlook(i, seconds or None, i % 3, now - 5) for i in site_ids)
        collector.update_schedules(outlooks, now - seconds)
    elif kind == "outage":
        collector.update_planned_outages(NextPlannedOutage(i, now + seconds) for i in site_ids)
    elif kind == "forecast":  # from a SoC measured `seconds` ago: shown as the SoC is
        collector.update_trajectories(PlanForecast(i, now - seconds, 0.2, 0.9) for i in site_ids)
    elif kind == "breach":
        collector.update_trajectories(
            PlanForecast(i, now - seconds, -0.1, 0.5, now + 600 * i, now + 300 * i, 12.5)
            for i in site_ids
        )
    elif kind == "no plan":
        collector.update_trajectories(PlanForecast(i) for i in site_ids)
    elif kind == "thresholds":
        collector.set_thresholds((0.1, 0.9), {i: (0.2, 0.8) for i in site_ids})
    elif kind == "exported":  # one of several replicas: its buckets moved (none: all sites)
        shown = frozenset(site_ids)
        collector.show_only(shown.__contains__ if shown else None)
    else:
        moment.now += seconds


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_render_shows_what_a_walk_of_every_site_shows(steps: list[Step]) -> None:
    moment = Moment()
    collector = SiteCollector(lambda: moment.now, STALE_AFTER)
    registry = CollectorRegistry()
    registry.register(collector)
    for step in steps:
        _apply(collector, moment, step)
        if step[0] == "time" or len(step[1]) % 2:  # render at some steps, not all
            assert _lines(collector.render()) == _lines(generate_latest(registry))
    assert _lines(collector.render()) == _lines(generate_latest(registry))
