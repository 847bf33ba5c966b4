"""The monitor's live picture of the portfolio: what the pollers and webhooks last saw.

One `Fleet` per app. Pollers and the webhook receiver report into it; it keeps the
metrics' site gauges in step and builds the `FleetView` snapshot the alert rules read.
It holds only the current picture — history lives in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from receiver.alerting.model import (
    Downtime,
    FailureRun,
    FleetView,
    ImplementationFailure,
    ServiceView,
    SiteView,
)
from receiver.cellect.clock import Clock
from receiver.cellect.enums import AvailabilityStatus, DowntimeType, ImplementationStatus
from receiver.cellect.models import AvailabilityEvent, SiteInformation, TimeSeriesResult
from receiver.circuit import CircuitState
from receiver.metrics import Metrics
from receiver.sitestate import (
    Availability,
    NextPlannedOutage,
    ScheduleOutlook,
    SiteSnapshot,
    camel,
)

if TYPE_CHECKING:
    from receiver.storage.status import StatusChange

PLANNED = frozenset({ImplementationStatus.IN_PROGRESS, ImplementationStatus.IMPLEMENTED})
# A partner posts its first schedules site by site, over minutes: until they have all
# arrived, a site without a plan is not yet news (ScheduleHorizonShort, WebhookSilence).
SCHEDULES_SETTLE = timedelta(minutes=10)
Slot = tuple[datetime, datetime]


@dataclass
class _Site:
    info: SiteInformation | None  # None: known only from webhooks so far
    updated_at: datetime | None
    unavailable: AvailabilityEvent | None = None
    planned: dict[Slot, ImplementationStatus] = field(default_factory=dict)
    failure_run: FailureRun | None = None


@dataclass
class _Service:
    api_last_success: datetime | None = None
    api_failures: int = 0
    api_failing_since: datetime | None = None
    auth_failing_since: datetime | None = None
    api_circuit_open: bool = False
    last_webhook_at: datetime | None = None
    refresh_token_expires_at: datetime | None = None


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
        polling: bool = True,
        failure_hold_s: float = 3600.0,
    ) -> None:
        self.metrics = metrics
        self.polling = polling  # False: webhooks only (no refresh token), nothing is polled
        self.clock = clock
        self.in_progress_stuck_s = in_progress_stuck_s
        self.failure_hold = timedelta(seconds=failure_hold_s)
        self.started_at = clock.now()
        self._sites: dict[int, _Site] = {}
        self._present: set[int] = set()
        self._service = _Service()
        self._schedules_since: datetime | None = None  # first seen; sticky, see _service_view

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

    def portfolio_polled(self, sites: Sequence[SiteInformation]) -> None:
        """A fresh portfolio: sites in it are live; those missing from it go stale."""
        now = self.clock.now()
        for info in sites:
            known = self._sites.get(info.site_id)
            if known is None:
                self._sites[info.site_id] = _Site(info=info, updated_at=now)
            else:
                known.info, known.updated_at = info, now
        self._present = {info.site_id for info in sites}
        self.metrics.update_sites(
            SiteSnapshot.from_information(info, now.timestamp()) for info in sites
        )

    def availability_polled(self, site_id: int, events: Sequence[AvailabilityEvent]) -> None:
        site = self._sites.get(site_id)
        if site is None:
            return
        now = self.clock.now()
        site.unavailable = _open_outage(events, now)
        self.metrics.update_availability([self._availability(site_id, site)])
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
        site.planned = {(r.start_date, r.end_date): r.implementation_status for r in results}
        self._publish_outlook([site_id])

    def statuses_changed(
        self, changes: Iterable[StatusChange], now: datetime | None = None
    ) -> None:
        """Entries reached new statuses (each transition is reported once): count every
        one, and follow each slot's newest entry for the plan."""
        now = now or self.clock.now()
        for change in changes:
            self._status_changed(change, now)
        # The outlook gauges follow at the next refresh_outlook (every alert cycle, a
        # few seconds): recomputing them per webhook entry cost the ingest path dearly.

    def _status_changed(self, change: StatusChange, now: datetime) -> None:
        site_id, slot = change.site_id, (change.start, change.end)
        self.metrics.schedule_status(site_id, change.status)
        # A site first heard of by webhook (webhooks-only mode, or before the first
        # portfolio poll) is tracked too, so its failures still raise alerts.
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = _Site(info=None, updated_at=None)
        latest = change.latest or change.status
        if change.end > now or slot in site.planned:
            site.planned[slot] = latest
        if change.status is ImplementationStatus.IMPLEMENTATION_FAILED:
            site.failure_run = self._next_run(
                site.failure_run, ImplementationFailure(change.start, change.end, now)
            )

    def _next_run(self, run: FailureRun | None, failure: ImplementationFailure) -> FailureRun:
        """`failure` continues the site's run, or starts one after a quiet failure hold."""
        if run is None or failure.at - run.latest.at >= self.failure_hold:
            return FailureRun(failure, failure)
        return FailureRun(run.first, failure)

    def webhooks_received(self, changes: Iterable[StatusChange]) -> None:
        """A committed batch of webhook deliveries and the status changes it made."""
        now = self._service.last_webhook_at = self.clock.now()
        self.statuses_changed(changes, now)

    def _outlook(self, site_id: int, site: _Site, now: datetime) -> ScheduleOutlook:
        ends = [end for (_, end), st in site.planned.items() if st in PLANNED and end > now]
        horizon = max((max(ends) - now).total_seconds(), 0.0) if ends else 0.0
        return ScheduleOutlook(site_id, horizon, len(self._stuck(site, now)))

    def _stuck(self, site: _Site, now: datetime) -> tuple[datetime, ...]:
        near = now + timedelta(seconds=self.in_progress_stuck_s)
        return tuple(
            sorted(
                start
                for (start, end), st in site.planned.items()
                if st is ImplementationStatus.IN_PROGRESS and start <= near and end > now
            )
        )

    def _publish_outlook(self, site_ids: Iterable[int]) -> None:
        now = self.clock.now()
        self.metrics.update_schedules(
            self._outlook(site_id, self._sites[site_id], now) for site_id in site_ids
        )

    def refresh_outlook(self) -> None:
        """Recompute horizons against the current time (they shrink as time passes),
        forgetting plan entries that have ended."""
        now = self.clock.now()
        for site in self._sites.values():
            ended = [slot for slot in site.planned if slot[1] <= now]
            for slot in ended:
                del site.planned[slot]
        self._publish_outlook(list(self._sites))

    def api_request(self, endpoint: str, code: str, seconds: float) -> None:
        """Every request to the vendor: metrics, and the ApiDown / AuthFailing picture.
        Any answer below 500 (a 429 too: throttled, not down) ends a run of failures, as
        it resets the client's circuit breaker (receiver.circuit) and as the Prometheus
        rule counts failures (5xx, error, timeout)."""
        self.metrics.observe_api(endpoint, code, seconds)
        svc, now = self._service, self.clock.now()
        if code.isdigit() and int(code) < 500:
            svc.api_last_success, svc.api_failures, svc.api_failing_since = now, 0, None
        else:
            svc.api_failures += 1
            svc.api_failing_since = svc.api_failing_since or now
        if endpoint == "access_token":
            svc.auth_failing_since = (svc.auth_failing_since or now) if code != "200" else None

    def api_circuit(self, state: CircuitState) -> None:
        """The client's circuit changed state. While it is not closed no request goes out,
        so no failure is counted either: ApiDown reads the circuit instead."""
        self._service.api_circuit_open = state is not CircuitState.CLOSED

    def set_refresh_token_expiry(self, at: datetime | None) -> None:
        self._service.refresh_token_expires_at = at
        self.metrics.set_refresh_token_expiry(at.timestamp() if at else None)

    def view(self) -> FleetView:
        """The snapshot the alert rules evaluate."""
        now = self.clock.now()
        sites = tuple(self._site_view(site_id, site, now) for site_id, site in self._sites.items())
        return FleetView(sites=sites, service=self._service_view(sites, now))

    def _site_view(self, site_id: int, site: _Site, now: datetime) -> SiteView:
        ends = [end for (_, end), st in site.planned.items() if st in PLANNED and end > now]
        event = site.unavailable
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
            last_update=site.updated_at,
            horizon_end=max(ends) if ends else None,
            in_progress_near_start=self._stuck(site, now),
            failure_run=site.failure_run,
            in_portfolio=site_id in self._present,
        )

    def _service_view(self, sites: tuple[SiteView, ...], now: datetime) -> ServiceView:
        svc = self._service
        # Sticky: a partner whose every plan has run out is the worst case of a short
        # horizon, not a partner that does not schedule.
        if self._schedules_since is None and any(s.horizon_end is not None for s in sites):
            self._schedules_since = now
        since = self._schedules_since
        return ServiceView(
            api_last_success=svc.api_last_success,
            api_consecutive_failures=svc.api_failures,
            api_failing_since=svc.api_failing_since,
            api_circuit_open=svc.api_circuit_open,
            auth_failing=svc.auth_failing_since is not None,
            auth_failing_since=svc.auth_failing_since,
            refresh_token_expires_at=svc.refresh_token_expires_at,
            last_webhook_at=svc.last_webhook_at,
            started_at=self.started_at,
            polling=self.polling,
            schedules_exist=since is not None and now - since >= SCHEDULES_SETTLE,
        )
