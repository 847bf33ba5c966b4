"""The built-in alert rules: pure functions from a `FleetView` snapshot to the alerts that hold.

`evaluate(view, thresholds, now)` returns every alert whose condition is true at `now`;
the engine turns appearances into "firing" and disappearances into "resolved". The
rules mirror `alerts/cellect.rules.yml` (DESIGN.md, "Alerts"):

- ImplementationFailed (critical), one per site, as the Prometheus rule: it fires when
  the box reports a failed entry (naming that first entry) and resolves once
  `failure_hold_s` (1 h) has passed without another report; the resolved notice means
  "no longer recent", not "repaired". One per site, not per entry: a fleet-wide failure
  is thousands of entries at once, and an operator needs the sites.
- SiteUnavailable: unplanned (or without a known event) critical, planned warning;
  names the event's reason and source.
- SoCLow / SoCHigh (warning): per-site thresholds, else the global ones. Not judged
  on stale data (DataStale says so instead).
- ScheduleHorizonShort (warning): the plan ends within `horizon_short_s`; only once
  the partner schedules at all (`service.schedules_exist`).
- InProgressStuck (warning): entries still InProgress within `in_progress_stuck_s` of
  their start (or past it): the box has not saved them.
- DataStale (warning): no update for `stale_after_s` (or never); names a site left
  out of PortfolioOverview (its box offline or not reporting) as such.
- ApiDown (critical): `api_down_failures` failures in a row (or the client's circuit
  open) and no success for `api_down_after_s`. AuthFailing (critical).
  RefreshTokenExpiring (warning).
- WebhookSilence (warning): schedules exist but no webhook for `webhook_silence_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import lru_cache

from receiver.alerting.model import (
    Alert,
    FleetView,
    ServiceView,
    Severity,
    SiteView,
    Thresholds,
)

SiteRule = Callable[[SiteView, ServiceView, Thresholds, datetime], Iterable[Alert]]
ServiceRule = Callable[[ServiceView, Thresholds, datetime], Iterable[Alert]]


def when(moment: datetime) -> str:
    return _when(moment, moment.utcoffset())


@lru_cache(maxsize=16_384)
def _when(moment: datetime, _offset: timedelta | None) -> str:
    """`when`, remembered: a failure storm formats the same few thousand moments every
    cycle, and strftime was most of the rules' time. The offset is part of the key:
    equal instants in other zones print differently."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if hours < 48 else f"{hours // 24} days"


def _site_labels(site: SiteView, **extra: str) -> dict[str, str]:
    return {"site_id": str(site.site_id), "site_name": site.name, **extra}


def _site_alert(
    rule: str,
    severity: Severity,
    site: SiteView,
    since: datetime,
    what: str,
    check: str,
    **extra: str,
) -> Alert:
    return Alert(
        rule=rule,
        severity=severity,
        labels=_site_labels(site, **extra),
        summary=f"{rule}: site {site.name} ({site.site_id}) — {what}",
        description=f"{what} since {when(since)}. Check: {check}",
        since=since,
    )


def _stale(site: SiteView, th: Thresholds, now: datetime) -> bool:
    return site.last_update is None or (now - site.last_update).total_seconds() > th.stale_after_s


def implementation_failed(
    site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    run = site.failure_run
    if run is None or (now - run.latest.at).total_seconds() >= th.failure_hold_s:
        return
    first = run.first
    what = (
        f"schedule entry {when(first.entry_start)} – {when(first.entry_end)} "
        "was reported ImplementationFailed"
    )
    check = (
        "the site's availability events and connectivity; re-post the schedule. "
        "Later failures of the site keep this alert firing (see its schedule outcomes)."
    )
    yield _site_alert("ImplementationFailed", Severity.CRITICAL, site, first.at, what, check)


def site_unavailable(
    site: SiteView, _svc: ServiceView, _th: Thresholds, now: datetime
) -> Iterable[Alert]:
    if site.available:
        return
    downtime = site.downtime
    planned = downtime is not None and downtime.planned
    reason = (downtime.reason if downtime else None) or "unknown"
    source = (downtime.source if downtime else None) or "unknown"
    kind = "planned" if planned else "unplanned"
    what = f"{kind} unavailability (reason: {reason}, source: {source})"
    check = (
        "that the trading plan leaves the site out until the event ends."
        if planned
        else "the named source (inverter, BMS, ESS or Cellect) with the site operator."
    )
    severity = Severity.WARNING if planned else Severity.CRITICAL
    since = site.unavailable_since or now
    yield _site_alert(
        "SiteUnavailable", severity, site, since, what, check, downtime=kind,
        reason=reason, source=source,
    )  # fmt: skip


def soc_bounds(site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    if site.soc_ratio is None or _stale(site, th, now):
        return
    low, high = th.soc_limits(site.site_id)
    since = site.last_update or now
    soc = f"state of charge {site.soc_ratio:.1%}"  # 9.6 %, not "10 %, below 10 %"
    if site.soc_ratio < low:
        what, check = f"{soc}, below {low:.0%}", "the schedule for discharges; plan a charge."
        yield _site_alert("SoCLow", Severity.WARNING, site, since, what, check)
    elif site.soc_ratio > high:
        what, check = f"{soc}, above {high:.0%}", "the schedule for charges; plan a discharge."
        yield _site_alert("SoCHigh", Severity.WARNING, site, since, what, check)


def horizon_short(
    site: SiteView, svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    if not svc.schedules_exist:
        return
    end = site.horizon_end
    if end is not None and (end - now).total_seconds() >= th.horizon_short_s:
        return
    if end is None or end <= now:
        what, since = "no planned schedule ahead: the battery stands by at 0 kW", end or now
    else:
        what = (
            f"the planned schedule ends at {when(end)}, in {duration((end - now).total_seconds())}"
        )
        since = end - timedelta(seconds=th.horizon_short_s)
    check = "that the optimiser posted the next schedule and that the post was accepted."
    yield _site_alert("ScheduleHorizonShort", Severity.WARNING, site, since, what, check)


def in_progress_stuck(
    site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    limit = now + timedelta(seconds=th.in_progress_stuck_s)
    stuck = sorted(start for start in site.in_progress_near_start if start <= limit)
    if not stuck:
        return
    since = stuck[0] - timedelta(seconds=th.in_progress_stuck_s)
    what = f"{len(stuck)} schedule entries (first at {when(stuck[0])}) still InProgress"
    check = "the site's connectivity and availability; expect ImplementationFailed next."
    yield _site_alert("InProgressStuck", Severity.WARNING, site, since, what, check)


def data_stale(site: SiteView, svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    if not svc.polling or not _stale(site, th, now):
        return
    if site.last_update is None:
        what, since = "no data received yet", now
    else:
        what, since = f"no update since {when(site.last_update)}", site.last_update
    check = "the pollers (cellect_poll_last_success_timestamp_seconds) and webhook deliveries."
    if not site.in_portfolio:
        what = f"{what}: Cellect reports no live data (left out of PortfolioOverview)"
        check = "the site's Cellect Box (power, network link): it is offline or not reporting."
    yield _site_alert("DataStale", Severity.WARNING, site, since, what, check)


SITE_RULES: tuple[SiteRule, ...] = (
    implementation_failed,
    site_unavailable,
    soc_bounds,
    horizon_short,
    in_progress_stuck,
    data_stale,
)


def _service_alert(rule: str, severity: Severity, since: datetime, what: str, check: str) -> Alert:
    return Alert(
        rule=rule,
        severity=severity,
        labels={},
        summary=f"{rule}: {what}",
        description=f"{what} since {when(since)}. Check: {check}",
        since=since,
    )


def api_down(svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    if svc.api_consecutive_failures < th.api_down_failures and not svc.api_circuit_open:
        return
    last = svc.api_last_success
    if last is not None and (now - last).total_seconds() < th.api_down_after_s:
        return
    since = svc.api_failing_since or last or now
    what = f"the Cellect Partner API failed {svc.api_consecutive_failures} times in a row"
    check = "cellect_api_requests_total by endpoint and code, the network and CELLECT_API_URL."
    yield _service_alert("ApiDown", Severity.CRITICAL, since, what, check)


def auth_failing(svc: ServiceView, _th: Thresholds, now: datetime) -> Iterable[Alert]:
    if not svc.auth_failing:
        return
    what = "the Cellect Partner API refuses the monitor's credentials"
    check = "CELLECT_REFRESH_TOKEN (expired or revoked?) and CELLECT_TOKEN_URL."
    yield _service_alert(
        "AuthFailing", Severity.CRITICAL, svc.auth_failing_since or now, what, check
    )


def refresh_token_expiring(svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    expiry = svc.refresh_token_expires_at
    if expiry is None or (expiry - now).total_seconds() >= th.refresh_token_expiring_s:
        return
    left = (expiry - now).total_seconds()
    what = f"the refresh token expires at {when(expiry)}" + (
        f", in {duration(left)}" if left > 0 else " (expired)"
    )
    check = "generate a new refresh token in the partner dashboard; set CELLECT_REFRESH_TOKEN."
    since = expiry - timedelta(seconds=th.refresh_token_expiring_s)
    yield _service_alert("RefreshTokenExpiring", Severity.WARNING, since, what, check)


def webhook_silence(svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    last = svc.last_webhook_at or svc.started_at
    if not svc.schedules_exist or last is None:
        return
    if (now - last).total_seconds() <= th.webhook_silence_s:
        return
    what = "no Cellect webhook accepted" + (" yet" if svc.last_webhook_at is None else "")
    check = "the webhook URL registered with Cellect (`cellect-monitor webhooks url`), its secret."
    yield _service_alert("WebhookSilence", Severity.WARNING, last, what, check)


SERVICE_RULES: tuple[ServiceRule, ...] = (
    api_down,
    auth_failing,
    refresh_token_expiring,
    webhook_silence,
)


def evaluate(view: FleetView, thresholds: Thresholds, now: datetime) -> list[Alert]:
    """Every alert whose condition holds at `now`, service alerts first."""
    alerts = [a for rule in SERVICE_RULES for a in rule(view.service, thresholds, now)]
    for site in view.sites:
        for site_rule in SITE_RULES:
            alerts.extend(site_rule(site, view.service, thresholds, now))
    return alerts
