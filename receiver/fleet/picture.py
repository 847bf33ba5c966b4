"""The monitor's live picture of the portfolio: what the pollers and webhooks last saw.

One `Fleet` per app. Pollers and the webhook receiver report into it; it keeps the
metrics' site gauges in step and builds the `FleetView` snapshot the alert rules read,
from the same values the gauges show, so the built-in rules and the Prometheus rules
judge alike. The service's own health (API, credentials, pollers, webhooks) is its
`service` (receiver.fleet.service_health). It holds only the current picture — history lives
in the database.

Each site's plan is also forecast (receiver.analytics.trajectory): from the SoC of the
latest portfolio poll, the planned (InProgress/Implemented) entries whose power an ExAnte
poll gave. A site is forecast again only when something it depends on changed — a
portfolio poll (its SoC), a new plan, a status change — at the next `judged_view`, all
changed sites in one batch (in a worker thread when many: numpy releases the GIL). A slot
known only from webhooks has no power yet and counts as 0 kW until the next ExAnte poll.

A site counts as scheduled once any schedule entry of it is known (ExAnte polls or
webhooks, since the start): only then is its schedule horizon exported and judged
(ScheduleHorizonShort), 0 once its plan has run out.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from receiver.alerting.model import (
    Downtime,
    FailureRun,
    FleetView,
    ImplementationFailure,
    PlanBreach,
    SiteView,
)
from receiver.analytics.trajectory import (
    Battery,
    Entry,
    Floats,
    Physics,
    Plan,
    Trajectory,
    entry_array,
    forecast_many,
)
from receiver.cellect.clock import Clock
from receiver.cellect.enums import AvailabilityStatus, DowntimeType, ImplementationStatus
from receiver.cellect.models import AvailabilityEvent, SiteInformation, TimeSeriesResult
from receiver.coordination import feed
from receiver.fleet.service_health import ServiceHealth
from receiver.fleet.tracking import Tracking
from receiver.metrics.registry import Metrics
from receiver.metrics.sites import (
    Availability,
    NextPlannedOutage,
    PlanForecast,
    ScheduleOutlook,
    SiteSnapshot,
    camel,
)

if TYPE_CHECKING:
    from receiver.storage.fleet_state import StoredFleet
    from receiver.storage.status import StatusChange

FAILED = ImplementationStatus.IMPLEMENTATION_FAILED
PLANNED = frozenset({ImplementationStatus.IN_PROGRESS, ImplementationStatus.IMPLEMENTED})
MAX_PLAN = timedelta(hours=48, minutes=5)  # the vendor's reach, and a little clock skew
MAX_CANDIDATES = 1_000  # unknown sites waiting to be asked about (the rest: next time)
SLICE = 500  # sites judged between two turns of the event loop (`judged_view`)
THREAD_AT = 200  # sites forecast at once from which the batch runs in a worker thread
log = logging.getLogger(__name__)
Slot = tuple[datetime, datetime]


@dataclass(slots=True)
class _Plan:
    """What a site's plan says from a moment on, and until when it says so: the ends of
    its planned entries within the vendor's reach and the starts of its stuck entries
    (the rules' inputs), both sorted, change with time only when an entry ends, a
    planned entry comes within reach or an InProgress one comes near its start."""

    read_at: datetime
    valid_until: datetime
    ends: list[datetime]
    stuck: list[datetime]

    def holds(self, now: datetime) -> bool:
        return self.read_at <= now < self.valid_until

    @property
    def horizon_end(self) -> datetime | None:
        return self.ends[-1] if self.ends else None


@dataclass(frozen=True, slots=True)
class _Master:
    """What the picture keeps of a site's master data (SiteInformation's fields it
    reads). One plain object a site instead of the vendor model, its field dict and
    field set: at 10,000 sites ~7 MB less and 20,000 fewer objects for every full
    garbage collection to walk (docs/performance.md)."""

    site_id: int
    site_name: str
    ess_soc: float
    ess_power: float
    ess_installed_energy_capacity: float
    ess_power_ac_rated_charge: float
    ess_power_ac_rated_discharge: float

    @classmethod
    def of(cls, info: SiteInformation) -> _Master:
        return cls(
            info.site_id,
            info.site_name,
            info.ess_soc,
            info.ess_power,
            info.ess_installed_energy_capacity,
            info.ess_power_ac_rated_charge,
            info.ess_power_ac_rated_discharge,
        )


@dataclass
class _Site:
    info: _Master | None  # None: known only from webhooks so far
    updated_at: datetime | None
    unavailable: AvailabilityEvent | None = None
    availability_at: datetime | None = None
    planned: dict[Slot, ImplementationStatus] = field(default_factory=dict)
    failure_run: FailureRun | None = None
    # `planned` read at a moment (None: to be read again, the plan changed). Every
    # alert cycle needs each site's horizon and stuck entries; walking every plan
    # each cycle stalled ingest for tens of ms at 1,000 sites (docs/performance.md).
    plan: _Plan | None = None
    powers: dict[Slot, float] = field(default_factory=dict)  # kW of each slot, from ExAnte
    entries: Floats | None = None  # the planned entries with a power (None: to be built)
    trajectory: Trajectory | None = None
    infeasible_since: datetime | None = None  # since when forecasts have breached


def _open_outage(events: Iterable[AvailabilityEvent], now: datetime) -> AvailabilityEvent | None:
    """The NotAvailable event in force at `now`, if any (latest start wins)."""
    current = [
        e
        for e in events
        if e.availability_status is AvailabilityStatus.NOT_AVAILABLE
        and e.start_date <= now
        and (e.end_date is None or e.end_date > now)
    ]
    return max(current, key=lambda e: e.start_date, default=None)


def _next_planned(
    site_id: int, events: Iterable[AvailabilityEvent], now: datetime
) -> NextPlannedOutage:
    """The earliest planned NotAvailable event still ahead of `now` (none: start None)."""
    ahead = [
        e
        for e in events
        if e.availability_status is AvailabilityStatus.NOT_AVAILABLE
        and e.type is DowntimeType.PLANNED
        and e.start_date > now
    ]
    event = min(ahead, key=lambda e: e.start_date, default=None)
    if event is None:
        return NextPlannedOutage(site_id)
    end = event.end_date.timestamp() if event.end_date else None
    return NextPlannedOutage(site_id, event.start_date.timestamp(), end)


class Fleet:
    """Current state per site plus the service's own health, shared by metrics and alerts."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        clock: Clock,
        in_progress_stuck_s: float,
        failure_hold_s: float = 3600.0,
        polling: bool = True,
        max_sites: int = 100_000,
        physics: Physics | None = None,
        tracking_window: int = 16,
    ) -> None:
        self.metrics = metrics
        self.physics = physics or Physics()
        self._unforecast: set[int] = set()  # sites to forecast again (module doc)
        self.forecasts_computed = 0  # sites forecast since the start (recomputed on change)
        # Delivered against planned, per site (receiver.fleet.tracking).
        self.tracking = Tracking(metrics, tracking_window)
        self.polling, self.max_sites = polling, max_sites
        self._portfolio_seen = False  # a portfolio poll has named the partner's sites
        self.clock = clock
        self.in_progress_stuck_s = in_progress_stuck_s
        self.failure_hold = timedelta(seconds=failure_hold_s)
        self.service = ServiceHealth(metrics=metrics, clock=clock)
        self._sites: dict[int, _Site] = {}
        self._refused_logged = False
        # Sites named by webhooks but by no portfolio poll, to be asked about (their
        # events) by the next events poll: a box offline since before the monitor
        # started leaves its site out of PortfolioOverview, and it is still ours.
        self._candidates: set[int] = set()
        self._present: set[int] = set()
        self._scheduled: set[int] = set()  # sites with a schedule entry known (module doc)

    @property
    def site_ids(self) -> list[int]:
        """The sites of the latest portfolio."""
        return sorted(self._present)

    @property
    def known_site_ids(self) -> list[int]:
        """Every site seen so far: the per-site pollers visit them all, because a site
        whose box is offline leaves the portfolio while its events and schedule (the
        very entries failing for want of a box) are still served."""
        return sorted(self._sites)

    def restore(
        self, stored: StoredFleet, also: Iterable[int] = (), *, site_gauges: bool = True
    ) -> None:
        """Start from what the database knows (after a restart): sites with their latest
        measurement, open events, each slot's plan, recent failures, the last webhook —
        and track the sites `also` (confirmed as the partner's) even with none of that.

        `site_gauges` False: the caller publishes the sites' state gauges itself (the
        portfolio poll does, in a worker thread, right after: rendering 10,000 new sites
        here held the event loop for over 100 ms). Only the sites restored get their
        schedule outlook published anew."""
        now = self.clock.now()
        also = list(also)
        for site_id in also:
            self._site(site_id)
        for s in stored.sites:
            self._sites[s.info.site_id] = _Site(_Master.of(s.info), updated_at=s.measured_at)
        self._present |= {s.info.site_id for s in stored.sites if s.present}
        if site_gauges:
            self.metrics.update_sites(
                SiteSnapshot.from_information(s.info, s.measured_at.timestamp())
                for s in stored.sites
                if s.measured_at is not None and s.present
            )
        for site_id, planned in stored.planned.items():
            site = self._site(site_id)
            site.planned, site.plan = dict(planned), None
            site.powers, site.entries = dict(stored.powers.get(site_id, {})), None
            self._unforecast.add(site_id)
        self._scheduled |= stored.scheduled_sites
        # The hold runs on monitored time: a failure learned before the monitor went down
        # and not yet told over (its site's alert has not resolved since) gets the rest of
        # its hold after the start, however long the downtime — it may never have been
        # told at all, if the monitor died between storing it and its alert cycle.
        down = max(now - (stored.last_activity or now), timedelta(0))
        for failure in stored.failures:
            resolved = stored.failure_alerts_resolved.get(failure.site_id)
            if resolved is not None and resolved >= failure.at:
                continue  # told, and resolved after its hold
            self.metrics.ensure_site(failure.site_id)  # the failure counters, at 0
            site = self._site(failure.site_id)
            at = min(failure.at + down, now)
            seen = ImplementationFailure(failure.start, failure.end, at)
            site.failure_run = self._next_run(site.failure_run, seen)
        for site_id, seen_at in stored.events_seen.items():
            site = self._site(site_id)
            site.availability_at = seen_at
            site.unavailable = _open_outage(stored.open_events.get(site_id, ()), now)
            self.metrics.update_availability(
                [self._availability(site_id, site)], seen_at.timestamp()
            )
        self.service.restore(last_webhook_at=stored.last_webhook_at)
        restored = {s.info.site_id for s in stored.sites}
        restored.update(also, stored.planned, (f.site_id for f in stored.failures))
        restored.update(stored.events_seen, stored.scheduled_sites)
        self._publish_outlook([site_id for site_id in self._sites if site_id in restored])

    def _site(self, site_id: int) -> _Site:
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = _Site(info=None, updated_at=None)
        return site

    def take_candidates(self) -> list[int]:
        """Sites to ask the vendor about (each asked once per webhook that names it)."""
        taken, self._candidates = sorted(self._candidates), set()
        return taken

    def unknown(self, site_ids: Iterable[int]) -> list[int]:
        """Those of `site_ids` the fleet has not tracked yet."""
        return [site_id for site_id in site_ids if site_id not in self._sites]

    def _tracks(self, site_id: int) -> bool:
        """Whether reports for `site_id` enter the live picture (and become series).

        Any authenticated sender may name any site id. Once a portfolio poll has named
        the partner's sites, a site outside it is stored (the history keeps it) but not
        tracked until the vendor confirms it is the partner's (`candidates`, asked by the
        events poller; its stored reports are read back then). Without polling, at most
        `max_sites` sites are tracked. Untracked reports are counted, and logged once.
        """
        if site_id in self._sites:
            return True
        outside = self.polling and self._portfolio_seen
        if not outside and len(self._sites) < self.max_sites:
            return True
        if outside and len(self._candidates) < MAX_CANDIDATES:
            self._candidates.add(site_id)
        self.metrics.untracked_site_report()
        if not self._refused_logged:
            self._refused_logged = True
            why = (
                "is not in the portfolio"
                if outside
                else f"would pass CELLECT_MAX_SITES ({self.max_sites})"
            )
            log.warning("webhook reports for site %d are stored, not tracked: it %s "
                        "(counted in cellect_untracked_site_reports_total; logged once)",
                        site_id, why)  # fmt: skip
        return False

    def portfolio_polled(
        self, sites: Sequence[SiteInformation], at: datetime | None = None
    ) -> list[SiteSnapshot]:
        """A fresh portfolio: sites in it are live; those missing from it go stale.
        Returns the sites' snapshots for the caller to hand to `metrics.update_sites`
        (the portfolio poller does it in a worker thread: at 10,000 sites rendering
        them on the event loop held it for ~100 ms)."""
        self._portfolio_seen = True
        now = at or self.clock.now()
        for info in sites:
            known = self._sites.get(info.site_id)
            if known is None:
                self._sites[info.site_id] = _Site(_Master.of(info), updated_at=now)
            else:
                known.info, known.updated_at = _Master.of(info), now
        self._present = {info.site_id for info in sites}
        self._unforecast.update(self._present)  # a new SoC for each
        return [SiteSnapshot.from_information(info, now.timestamp()) for info in sites]

    def availability_polled(
        self, site_id: int, events: Sequence[AvailabilityEvent], at: datetime | None = None
    ) -> None:
        """The site's events as polled at `at` (default: now)."""
        site = self._sites.get(site_id)
        if site is None:
            return
        site.availability_at = now = at or self.clock.now()
        site.unavailable = _open_outage(events, now)
        self.metrics.update_availability([self._availability(site_id, site)], now.timestamp())
        self.metrics.update_planned_outages([_next_planned(site_id, events, now)])

    @staticmethod
    def _availability(site_id: int, site: _Site) -> Availability:
        event = site.unavailable
        if event is None:
            return Availability(site_id=site_id, available=True)
        return Availability(site_id, False, event.type, event.reason, event.source)

    def schedule_polled(self, site_id: int, results: Sequence[TimeSeriesResult]) -> None:
        """The planned (ExAnte) schedule replaces what was known of the site's future."""
        site = self._sites.get(site_id)
        if site is None:
            return
        planned = {(r.start_date, r.end_date): r.implementation_status for r in results}
        powers = {(r.start_date, r.end_date): r.ess_power_ac for r in results}
        self._plan_replaced(site_id, site, planned, powers)

    def _plan_replaced(
        self,
        site_id: int,
        site: _Site,
        planned: dict[Slot, ImplementationStatus],
        powers: dict[Slot, float] | None,
    ) -> None:
        site.planned, site.plan = planned, None
        if powers is not None:  # None: a feed row of an older version (statuses only)
            site.powers = powers
        site.entries = None
        self._unforecast.add(site_id)
        if planned:
            self._scheduled.add(site_id)
        self._publish_outlook([site_id])

    def apply_feed(self, entries: Iterable[feed.Entry]) -> tuple[bool, list[SiteSnapshot]]:
        """What the other replicas changed (receiver.coordination.feed), applied as if
        this replica had polled or received it. Returns whether a failure was among it
        (alerting wakes), and the sites' snapshots of a portfolio in it, if any, for the
        caller to hand to `metrics.update_sites` (in a worker thread, as the poller does)."""
        failed, snapshots = False, []
        for entry in entries:
            if isinstance(entry, feed.StatusEntry):
                self.statuses_changed(entry.changes)
                failed = failed or any(c.status is FAILED for c in entry.changes)
                if entry.received is not None:
                    self.service.webhook_accepted_elsewhere(entry.received)
            elif isinstance(entry, feed.PlanEntry):
                for site_id, planned in entry.plans.items():
                    site = self._sites.get(site_id)
                    if site is not None:
                        powers = entry.powers.get(site_id)
                        self._plan_replaced(site_id, site, planned, powers)
            elif isinstance(entry, feed.EventsEntry):
                for site_id, events in entry.events.items():
                    self.availability_polled(site_id, events, entry.at)
            elif isinstance(entry, feed.EnergyEntry):
                self.tracking.add(entry.rows)
            else:
                snapshots = self.portfolio_polled(entry.sites, entry.at)
        return failed, snapshots

    def statuses_changed(
        self, changes: Iterable[StatusChange], now: datetime | None = None
    ) -> None:
        """Entries reached new statuses (each transition is reported once): count every
        one, and follow each slot's newest entry for the plan."""
        now = now or self.clock.now()
        for change in changes:
            self._status_changed(change, now)
        # The outlook gauges follow at the next judged_view (every alert cycle, a
        # few seconds), not per webhook entry: this runs on the ingest path.

    def _status_changed(self, change: StatusChange, now: datetime) -> None:
        site_id, slot = change.site_id, (change.start, change.end)
        if not self._tracks(site_id):
            return
        self.metrics.schedule_status(site_id, change.status)
        self._scheduled.add(site_id)
        # A site first heard of by webhook (webhooks-only mode, or before the first
        # portfolio poll) is tracked too, so its failures still raise alerts.
        site = self._site(site_id)
        latest = change.latest or change.status
        if change.end > now or slot in site.planned:
            before = site.planned.get(slot)
            site.planned[slot] = latest
            if (before in PLANNED) != (latest in PLANNED):
                site.entries = None  # the slot joins or leaves the forecast plan
                self._unforecast.add(site_id)
            if site.plan is not None and site.plan.holds(now):
                _amend(site.plan, slot, before, latest, now, self.in_progress_stuck_s)
            else:
                site.plan = None
        if change.status is ImplementationStatus.IMPLEMENTATION_FAILED:
            # Learned when it was observed (a poll's request went out then), as the
            # history and a restart count it — not when the round's write ended.
            learned = min(change.observed_at, now)
            site.failure_run = self._next_run(
                site.failure_run, ImplementationFailure(change.start, change.end, learned)
            )

    def _next_run(self, run: FailureRun | None, failure: ImplementationFailure) -> FailureRun:
        """`failure` continues the site's run, or starts one after a quiet failure hold."""
        if run is None or failure.at - run.latest.at >= self.failure_hold:
            return FailureRun(failure, failure)
        return FailureRun(run.first, failure)

    def webhooks_received(self, changes: Iterable[StatusChange]) -> None:
        """A committed batch of webhook deliveries and the status changes it made."""
        self.statuses_changed(changes, self.clock.now())

    def _outlook(self, site_id: int, site: _Site, now: datetime) -> ScheduleOutlook:
        plan = self._plan(site, now)
        horizon = None  # not exported for a site nobody schedules
        if site_id in self._scheduled:
            end = plan.horizon_end
            horizon = (end - now).total_seconds() if end else 0.0
        run = site.failure_run
        failed_at = run.latest.at.timestamp() if run else None
        return ScheduleOutlook(site_id, horizon, len(plan.stuck), failed_at)

    def _plan(self, site: _Site, now: datetime) -> _Plan:
        """The site's plan read at `now`: the one read before while it still holds, else
        read again (forgetting entries that have ended)."""
        plan = site.plan
        if plan is None or not plan.holds(now):
            plan = site.plan = _read_plan(site.planned, now, self.in_progress_stuck_s)
        return plan

    def _publish_outlook(self, site_ids: Iterable[int]) -> None:
        now = self.clock.now()
        self.metrics.update_schedules(
            self._outlook(site_id, self._sites[site_id], now) for site_id in site_ids
        )

    def api_request(self, endpoint: str, code: str, seconds: float) -> None:
        """Every request to the vendor (the client's `on_request`): see `service`."""
        self.service.api_request(endpoint, code, seconds)

    def set_refresh_token_expiry(self, at: datetime | None) -> None:
        self.service.set_refresh_token_expiry(at)

    def rows(self) -> list[SiteRow]:
        """Every tracked site as a plain row, cheaply (no plan walk): the console sorts,
        filters and pages these for a 10,000-site fleet on each request."""
        rows = []
        present, scheduled = self._present, self._scheduled
        for site_id, site in self._sites.items():
            info = site.info
            if info is None:
                row = SiteRow(site_id, f"site {site_id}", None, None, None, None, None,
                              site_id in present, site_id in scheduled, site.updated_at,
                              site.unavailable)  # fmt: skip
            else:
                row = SiteRow(site_id, info.site_name, info.ess_soc, info.ess_power,
                              info.ess_installed_energy_capacity,
                              info.ess_power_ac_rated_charge, info.ess_power_ac_rated_discharge,
                              site_id in present, site_id in scheduled, site.updated_at,
                              site.unavailable)  # fmt: skip
            rows.append(row)
        return rows

    def horizon_end(self, site_id: int) -> datetime | None:
        """The end of the site's planned schedule ahead (None: none, or an unknown site)."""
        site = self._sites.get(site_id)
        return None if site is None else self._plan(site, self.clock.now()).horizon_end

    async def judged_view(self) -> FleetView:
        """`view()`, with every site's outlook published as of the same moment (horizons
        shrink as time passes; a plan is walked again only where it changed or time
        moved past what it said), in slices of `SLICE` sites with the event loop let run
        between them: at 10,000 sites a single pass held webhooks, scrapes and /healthz
        back for ~100 ms (docs/performance.md). A site first seen during the pass is
        judged at the next."""
        await self._forecast_changed()
        now = self.clock.now()
        items = list(self._sites.items())
        views: list[SiteView] = []
        for first in range(0, len(items), SLICE):
            chunk = items[first : first + SLICE]
            self.metrics.update_schedules(self._outlook(i, site, now) for i, site in chunk)
            views.extend(self._site_view(i, site, now) for i, site in chunk)
            await asyncio.sleep(0)
        return FleetView(sites=tuple(views), service=self.service.view())

    def view(self) -> FleetView:
        """The snapshot the alert rules evaluate."""
        self._apply_forecasts(*self._forecast_inputs())
        now = self.clock.now()
        sites = tuple(self._site_view(site_id, site, now) for site_id, site in self._sites.items())
        return FleetView(sites=sites, service=self.service.view())

    def _site_view(self, site_id: int, site: _Site, now: datetime) -> SiteView:
        event, plan = site.unavailable, self._plan(site, now)
        downtime = None
        if event is not None:
            downtime = Downtime(
                planned=event.type.value == "Planned",
                reason=camel(event.reason),
                source=camel(event.source),
            )
        return SiteView(
            site_id=site_id,
            name=site.info.site_name if site.info else f"site {site_id}",
            soc_ratio=site.info.ess_soc / 100.0 if site.info else None,
            available=event is None,
            downtime=downtime,
            unavailable_since=event.start_date if event else None,
            availability_at=site.availability_at,
            last_update=site.updated_at,
            scheduled=site_id in self._scheduled,
            horizon_end=plan.horizon_end,
            in_progress_near_start=tuple(plan.stuck),
            failure_run=site.failure_run,
            in_portfolio=site_id in self._present,
            plan_breach=_plan_breach(site),
            tracking_error=self.tracking.error(site_id),
            tracking_at=self.tracking.latest(site_id),
        )

    async def _forecast_changed(self) -> None:
        """Forecast the sites whose SoC, plan or statuses changed since (module doc)."""
        ids, plans = self._forecast_inputs()
        if len(plans) >= THREAD_AT:
            results = await asyncio.to_thread(forecast_many, plans, self.physics)
        else:
            results = forecast_many(plans, self.physics)
        self._apply_forecasts(ids, plans, results)

    def _forecast_inputs(self) -> tuple[list[int], list[Plan]]:
        """The changed sites (taken off the list) with what their forecast starts from;
        a site without master data or without a plan ahead gets none (its series go)."""
        changed, self._unforecast = self._unforecast, set()
        ids, plans, nothing = [], [], []
        for site_id in changed:
            site = self._sites.get(site_id)
            info = None if site is None else site.info
            if site is None or info is None or site.updated_at is None:
                nothing.append(site_id)
                continue
            if site.entries is None:
                site.entries = entry_array(_planned_entries(site))
            battery = Battery(
                info.ess_soc / 100.0, info.ess_installed_energy_capacity,
                info.ess_power_ac_rated_charge, info.ess_power_ac_rated_discharge,
            )  # fmt: skip
            ids.append(site_id)
            plans.append(Plan(battery, site.entries, site.updated_at.timestamp()))
        for site_id in nothing:
            self._forget_forecast(site_id)
        return ids, plans

    def _apply_forecasts(
        self, ids: list[int], plans: list[Plan], results: list[Trajectory | None] | None = None
    ) -> None:
        if results is None:
            results = forecast_many(plans, self.physics)
        self.forecasts_computed += len(ids)
        published = []
        for site_id, plan, result in zip(ids, plans, results, strict=True):
            site = self._sites.get(site_id)
            if site is None:
                continue
            if result is None or result.entries == 0:
                published.append(self._forget_forecast(site_id, publish=False))
                continue
            site.trajectory = result
            breach = result.breach
            if breach is None:
                site.infeasible_since = None
            elif site.infeasible_since is None:
                site.infeasible_since = _moment(plan.start)
            published.append(
                PlanForecast(
                    site_id, plan.start, result.soc_min, result.soc_max,
                    None if breach is None else breach.at,
                    None if breach is None else breach.entry.start,
                    None if breach is None else breach.shortfall_kwh,
                )
            )  # fmt: skip
        if published:
            self.metrics.update_trajectories(published)

    def _forget_forecast(self, site_id: int, *, publish: bool = True) -> PlanForecast:
        site = self._sites.get(site_id)
        if site is not None:
            site.trajectory, site.infeasible_since = None, None
        nothing = PlanForecast(site_id)
        if publish:
            self.metrics.update_trajectories([nothing])
        return nothing

    def trajectory(self, site_id: int) -> Trajectory | None:
        """The site's latest plan forecast (None: none)."""
        site = self._sites.get(site_id)
        return None if site is None else site.trajectory


class SiteRow(NamedTuple):
    """One site as the console's fleet table shows it: the latest portfolio's values
    (None before any) and its open outage. The schedule horizon is left out: it walks
    the site's plan, so the console asks for it (`horizon_end`) only for a page's rows.
    A tuple, not a frozen dataclass: 10,000 of them are made per page view, and a tuple
    is several times cheaper to build."""

    site_id: int
    name: str
    soc_pct: float | None
    power_kw: float | None
    capacity_kwh: float | None
    rated_charge_kw: float | None
    rated_discharge_kw: float | None
    in_portfolio: bool
    scheduled: bool
    last_update: datetime | None
    outage: AvailabilityEvent | None


def _amend(
    plan: _Plan,
    slot: Slot,
    before: ImplementationStatus | None,
    after: ImplementationStatus,
    now: datetime,
    stuck_s: float,
) -> None:
    """Change one slot's status in `plan` (which holds at `now`) from `before` (None: a
    new slot) to `after`, without walking the rest: a webhook batch changes a few of a
    site's hundreds of entries.

    While a reading holds, no entry has ended and none has crossed either reach since
    it was made, so asking "within reach" at `now` answers as it did then."""
    start, end = slot
    reach, near = now + MAX_PLAN, now + timedelta(seconds=stuck_s)
    plan.valid_until = min(plan.valid_until, end)
    if end <= reach:
        if before in PLANNED:
            del plan.ends[bisect.bisect_left(plan.ends, end)]
        if after in PLANNED:
            bisect.insort(plan.ends, end)
    elif after in PLANNED:
        plan.valid_until = min(plan.valid_until, end - MAX_PLAN)
    if start <= near:
        if before is ImplementationStatus.IN_PROGRESS:
            del plan.stuck[bisect.bisect_left(plan.stuck, start)]
        if after is ImplementationStatus.IN_PROGRESS:
            bisect.insort(plan.stuck, start)
    elif after is ImplementationStatus.IN_PROGRESS:
        plan.valid_until = min(plan.valid_until, start - timedelta(seconds=stuck_s))


def _read_plan(planned: dict[Slot, ImplementationStatus], now: datetime, stuck_s: float) -> _Plan:
    """Forget the entries of `planned` that have ended; read the rest at `now`.

    The horizon: the end of the last planned (InProgress/Implemented) entry ahead, if
    any. Entries ending beyond the vendor's 48 hours cannot be a plan (an odd report, or
    one an older version let in): they are left out rather than stretch the horizon.
    Stuck: the starts of InProgress entries within `stuck_s` of starting, or running.
    The reading holds until the first entry ends or another comes within either reach.
    """
    for slot in [slot for slot in planned if slot[1] <= now]:
        del planned[slot]
    reach, near = now + MAX_PLAN, now + timedelta(seconds=stuck_s)
    ends: list[datetime] = []
    stuck: list[datetime] = []
    until = now + MAX_PLAN  # nothing planned: read again in a while all the same
    for (start, end), status in planned.items():
        until = min(until, end)  # all ends are ahead now
        if status in PLANNED:
            if end <= reach:
                ends.append(end)
            else:
                until = min(until, end - MAX_PLAN)
        if status is ImplementationStatus.IN_PROGRESS:
            if start <= near:
                stuck.append(start)
            else:
                until = min(until, start - timedelta(seconds=stuck_s))
    ends.sort()
    stuck.sort()
    return _Plan(now, until, ends, stuck)


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _planned_entries(site: _Site) -> list[Entry]:
    """The site's planned slots whose power is known, as forecast entries."""
    powers = site.powers
    return [
        Entry(start.timestamp(), end.timestamp(), powers[(start, end)])
        for (start, end), status in site.planned.items()
        if status in PLANNED and (start, end) in powers
    ]


def _plan_breach(site: _Site) -> PlanBreach | None:
    trajectory = site.trajectory
    breach = None if trajectory is None else trajectory.breach
    if breach is None:
        return None
    entry = breach.entry
    return PlanBreach(
        at=_moment(breach.at),
        entry_start=_moment(entry.start),
        entry_end=_moment(entry.end),
        power_kw=entry.power_kw,
        limit=breach.limit,
        shortfall_kwh=breach.shortfall_kwh,
        since=site.infeasible_since or _moment(trajectory.start if trajectory else breach.at),
    )
