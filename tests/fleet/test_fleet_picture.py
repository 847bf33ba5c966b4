"""The fleet picture on its own: what it makes of polls and webhooks, as the alert rules
and the metrics see it (`view()` and the registry), on a frozen clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from receiver.alerting.model import SiteView
from receiver.cellect.clock import Clock
from receiver.cellect.enums import AvailabilityStatus, DowntimeType, EventReason, EventSource
from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import AvailabilityEvent, SiteInformation, TimeSeriesResult
from receiver.fleet.picture import SLICE, Fleet
from receiver.metrics.registry import Metrics
from receiver.storage.status import StatusChange

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


class Picture:
    """A Fleet with its own clock and registry."""

    def __init__(self, *, polling: bool = False, max_sites: int = 100_000) -> None:
        self.clock = Clock.frozen(NOW)
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry, now=self.clock.timestamp)
        self.fleet = Fleet(
            metrics=metrics, clock=self.clock, in_progress_stuck_s=300.0,
            failure_hold_s=3600.0, polling=polling, max_sites=max_sites,
        )  # fmt: skip

    def portfolio(self, sites: list[SiteInformation]) -> None:
        """A portfolio poll, as the poller reports it: the fleet, then its gauges."""
        self.fleet.metrics.update_sites(self.fleet.portfolio_polled(sites))

    def site(self, site_id: int) -> SiteView:
        [found] = [s for s in self.fleet.view().sites if s.site_id == site_id]
        return found

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def _info(site_id: int, soc: float = 50.0) -> SiteInformation:
    return SiteInformation(
        site_id=site_id, site_name=f"Site {site_id}", country="ES", latitude=40.4,
        longitude=-3.7, ess_soc=soc, ess_power=0.0, ess_installed_energy_capacity=200.0,
        ess_power_ac_rated_discharge=100.0, ess_power_ac_rated_charge=90.0,
    )  # fmt: skip


def _event(
    site_id: int, start: datetime, end: datetime | None, planned: bool = False
) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=1, site_id=site_id, site_name="x", country="ES", latitude=0.0, longitude=0.0,
        availability_status=AvailabilityStatus.NOT_AVAILABLE,
        type=DowntimeType.PLANNED if planned else DowntimeType.UNPLANNED,
        reason=EventReason.OUTAGE, source=EventSource.INVERTER, start_date=start, end_date=end,
    )  # fmt: skip


def _change(
    site_id: int, hours: float, status: S, latest: S | None = None, observed: datetime = NOW
) -> StatusChange:
    start = NOW + timedelta(hours=hours)
    return StatusChange(
        site_id, start, start + QUARTER, None, status, "webhook", observed, 0, latest or status
    )


def _planned(hours: float, status: S = S.IN_PROGRESS) -> TimeSeriesResult:
    start = NOW + timedelta(hours=hours)
    return TimeSeriesResult(
        start_date=start, end_date=start + QUARTER, essPowerAC=10.0, implementation_status=status
    )


def test_a_portfolio_poll_makes_sites_live_and_the_next_leaves_the_missing_ones_stale() -> None:
    """Sites in a portfolio poll get its time and SoC; a site the next poll leaves out
    keeps its old update time (it goes stale) and is marked out of the portfolio."""
    p = Picture(polling=True)
    p.portfolio([_info(1, soc=40.0), _info(2, soc=80.0)])
    assert (p.site(1).soc_ratio, p.site(1).last_update, p.site(1).in_portfolio) == (0.4, NOW, True)
    p.clock.advance(60)
    p.portfolio([_info(1, soc=41.0)])
    assert p.site(1).last_update == NOW + timedelta(seconds=60)
    assert (p.site(2).last_update, p.site(2).in_portfolio) == (NOW, False)
    assert p.sample("cellect_site_state_of_charge_ratio", site_id="1") == 0.41


def test_an_open_outage_makes_a_site_unavailable_until_it_ends() -> None:
    """An unplanned outage under way: unavailable since its start, with its reason and
    source; once the event has ended the site is available again."""
    p = Picture()
    p.portfolio([_info(3)])
    began = NOW - timedelta(minutes=10)
    p.fleet.availability_polled(3, [_event(3, began, None)])
    site = p.site(3)
    assert (site.available, site.unavailable_since, site.availability_at) == (False, began, NOW)
    assert site.downtime is not None
    assert not site.downtime.planned
    assert (site.downtime.reason, site.downtime.source) == ("Outage", "Inverter")
    p.fleet.availability_polled(3, [_event(3, began, NOW - timedelta(minutes=1))])
    assert p.site(3).available


def test_a_polled_plan_sets_the_horizon_and_time_shrinks_it() -> None:
    """ExAnte replaces the site's future; the horizon is the end of the last planned entry
    ahead, and entries that have ended drop out as the clock moves on."""
    p = Picture()
    p.portfolio([_info(4)])
    p.fleet.schedule_polled(4, [_planned(0), _planned(1), _planned(2, S.DELETED)])
    assert p.site(4).horizon_end == NOW + timedelta(hours=1) + QUARTER
    p.fleet.schedule_polled(4, [_planned(0)])
    assert p.site(4).horizon_end == NOW + QUARTER
    p.clock.advance(20 * 60)
    asyncio.run(p.fleet.judged_view())
    assert (p.site(4).scheduled, p.site(4).horizon_end) == (True, None)
    assert p.sample("cellect_site_schedule_horizon_seconds", site_id="4") == 0.0


def test_an_entry_beyond_48_hours_does_not_stretch_the_horizon() -> None:
    """A planned entry 72 h ahead (no vendor plan reaches that far) is left out of the
    horizon; one 10 h ahead counts."""
    p = Picture()
    p.fleet.statuses_changed([_change(1, 72, S.IN_PROGRESS)])
    assert p.site(1).horizon_end is None
    p.fleet.statuses_changed([_change(1, 10, S.IMPLEMENTED)])
    assert p.site(1).horizon_end == NOW + timedelta(hours=10) + QUARTER


def test_a_slot_follows_its_newest_entry() -> None:
    """The old entry of a slot overwritten while the new one is InProgress: the slot is
    planned (the newest entry's status), and the new entry's failure starts a run."""
    p = Picture()
    p.fleet.statuses_changed([_change(2, 1, S.OVERWRITTEN, latest=S.IN_PROGRESS)])
    assert p.site(2).horizon_end == NOW + timedelta(hours=1) + QUARTER
    p.fleet.statuses_changed([_change(2, 1, S.IMPLEMENTATION_FAILED)])
    site = p.site(2)
    assert site.failure_run is not None
    assert site.failure_run.first.entry_start == NOW + timedelta(hours=1)
    assert site.horizon_end is None


def test_failures_within_the_hold_are_one_run_and_a_later_one_starts_another() -> None:
    """A run keeps its first failure while failures follow within the hold (an hour);
    one after a quiet hour starts a new run. Every failure is counted."""
    p = Picture()
    p.fleet.statuses_changed([_change(5, -2, S.IMPLEMENTATION_FAILED)])
    p.clock.advance(30 * 60)
    p.fleet.statuses_changed([_change(5, -1, S.IMPLEMENTATION_FAILED, observed=p.clock.now())])
    run = p.site(5).failure_run
    assert run is not None
    assert run.first.entry_start == NOW - timedelta(hours=2)
    assert run.latest.at == NOW + timedelta(minutes=30)
    p.clock.advance(2 * 3600)
    p.fleet.statuses_changed([_change(5, 2, S.IMPLEMENTATION_FAILED, observed=p.clock.now())])
    run = p.site(5).failure_run
    assert run is not None
    assert run.first == run.latest
    assert p.sample("cellect_schedule_implementation_failures_total", site_id="5") == 3


def test_an_entry_still_in_progress_near_its_start_is_stuck() -> None:
    """InProgress entries starting within 5 minutes (or running) are listed; later ones not."""
    p = Picture()
    p.fleet.statuses_changed([_change(6, 0.05, S.IN_PROGRESS), _change(6, 1, S.IN_PROGRESS)])
    assert p.site(6).in_progress_near_start == (NOW + timedelta(hours=0.05),)


def test_once_the_portfolio_is_known_a_stranger_site_is_stored_not_tracked() -> None:
    """After a portfolio poll, a webhook for a site outside it is counted as untracked and
    becomes a candidate to ask the vendor about, once; the portfolio's sites are tracked."""
    p = Picture(polling=True)
    p.portfolio([_info(1)])
    p.fleet.webhooks_received([_change(1, 1, S.IN_PROGRESS), _change(99, 1, S.IN_PROGRESS)])
    assert [s.site_id for s in p.fleet.view().sites] == [1]
    assert p.sample("cellect_untracked_site_reports_total") == 1
    assert p.fleet.take_candidates() == [99]
    assert p.fleet.take_candidates() == []
    assert p.fleet.unknown([1, 99]) == [99]


def test_without_polling_at_most_max_sites_are_tracked() -> None:
    """Webhooks only: sites are tracked as webhooks name them, up to CELLECT_MAX_SITES."""
    p = Picture(max_sites=2)
    p.fleet.webhooks_received([_change(site, 1, S.IN_PROGRESS) for site in (1, 2, 3)])
    assert [s.site_id for s in p.fleet.view().sites] == [1, 2]
    assert p.sample("cellect_untracked_site_reports_total") == 1
    assert p.fleet.take_candidates() == []


PLAN_STATUSES = st.sampled_from([S.IN_PROGRESS, S.IMPLEMENTED, S.DELETED, S.OVERWRITTEN])
# Quarter-hours from NOW of an entry's start: a few hours around NOW, or 46-55 h ahead,
# so that changes often hit a planned slot (the horizon's, a stuck one's) and some
# entries lie beyond the vendor's 48 hours and come within reach as the clock moves.
QUARTERS = st.one_of(st.integers(-4, 16), st.integers(185, 220))
ENTRIES = st.lists(st.tuples(QUARTERS, PLAN_STATUSES), max_size=40)


@settings(max_examples=200, deadline=None)
@example(plan=[(0, S.IN_PROGRESS)], steps=[(0, None), (1, (0, S.IMPLEMENTED))])
@example(plan=[(0, S.IMPLEMENTED), (4, S.IN_PROGRESS)], steps=[(0, None), (1, (4, S.DELETED))])
@example(plan=[(200, S.IMPLEMENTED)], steps=[(0, None), (600, None), (1, (200, S.DELETED))])
@example(plan=[(8, S.IMPLEMENTED)], steps=[(0, None), (1, (2, S.IN_PROGRESS)), (26, None)])
@example(plan=[(8, S.IMPLEMENTED)], steps=[(0, None), (1, (1, S.IN_PROGRESS)), (40, None)])
@given(
    plan=ENTRIES,
    steps=st.lists(
        st.tuples(st.integers(0, 2 * 60), st.none() | st.tuples(QUARTERS, PLAN_STATUSES)),
        max_size=25,
    ),
)
def test_the_horizon_and_stuck_entries_are_those_of_the_plan_at_every_moment(
    plan: list[tuple[int, S]], steps: list[tuple[int, tuple[int, S] | None]]
) -> None:
    """The fleet reads a site's plan again only when it changed or time moved past what
    the last reading said; whatever the plan and however the clock moves, what the
    rules see is what the plan says now (the definitions, walked here from scratch)."""
    p = Picture()
    p.portfolio([_info(7)])
    entries = {NOW + q * QUARTER: status for q, status in plan}
    p.fleet.schedule_polled(7, [_planned(q / 4, status) for q, status in plan])
    for minutes, change in steps:
        p.clock.advance(minutes * 60)
        now = p.clock.now()
        if change is not None:
            start = NOW + change[0] * QUARTER
            if start + QUARTER > now or start in entries:  # the fleet keeps only these
                entries[start] = change[1]
            p.fleet.statuses_changed([StatusChange(7, start, start + QUARTER, None, change[1],
                                                   "webhook", now, 0, change[1])])  # fmt: skip
        reach = now + timedelta(hours=48, minutes=5)
        ends = [s + QUARTER for s, st_ in entries.items() if st_ in (S.IN_PROGRESS, S.IMPLEMENTED)]
        stuck = sorted(
            s for s, st_ in entries.items()
            if st_ is S.IN_PROGRESS and s <= now + timedelta(minutes=5) and s + QUARTER > now
        )  # fmt: skip
        site = p.site(7)
        assert site.horizon_end == max((e for e in ends if now < e <= reach), default=None)
        assert site.in_progress_near_start == tuple(stuck)


@pytest.mark.anyio
async def test_the_judged_view_in_slices_is_the_view_and_publishes_every_outlook() -> None:
    """The alert loop's view, built a slice of sites at a time between turns of the
    event loop, is the fleet's view, and every site's outlook is published as of now."""
    p = Picture()
    sites = range(1, 2 * SLICE + 7)
    p.portfolio([_info(i) for i in sites])
    for i in sites:
        p.fleet.schedule_polled(i, [_planned(0), _planned(i % 8)])
    p.clock.advance(20 * 60)
    judged = await p.fleet.judged_view()
    assert judged == p.fleet.view()
    assert [s.site_id for s in judged.sites] == list(sites)
    for i in sites:
        horizon = (p.site(i).horizon_end or NOW) - p.clock.now()
        expected = max(0.0, horizon.total_seconds()) if i % 8 else 0.0
        assert p.sample("cellect_site_schedule_horizon_seconds", site_id=str(i)) == expected


def test_a_polled_failure_counts_from_when_it_was_observed_not_from_the_rounds_end() -> None:
    """A poll observes a failure when its request goes out; the round's write may end
    minutes later (other sites, retries). The run, its alert's "since" and its hold
    count from the observation, as the history and a restart do."""
    p = Picture()
    observed = p.clock.now()
    p.clock.advance(20 * 60)  # the rest of the round
    p.fleet.statuses_changed([_change(5, -1, S.IMPLEMENTATION_FAILED, observed=observed)])
    run = p.site(5).failure_run
    assert run is not None
    assert (run.first.at, run.latest.at) == (observed, observed)
