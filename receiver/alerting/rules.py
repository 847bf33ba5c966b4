"""The built-in alert rules: pure functions from a `FleetView` snapshot to the alerts that hold.

`evaluate(view, thresholds, now)` returns every alert whose condition is true at `now`;
the engine holds each one for its catalogue hold (`for`) before it fires, and turns
disappearances into "resolved". Each rule judges what `alerts/cellect.rules.yml` judges
from the metrics, with the same thresholds (catalogue.py; docs/alerts.md has each rule's
runbook):

- ImplementationFailed (critical), one per site: a failure report within
  `failure_hold_s` (1 h) of now, naming the run's first failed entry; it resolves an hour
  after the site's latest failure ("no longer recent", not "repaired").
- SiteUnavailable: unplanned critical, planned warning, while the site's latest
  availability poll (at most `stale_after_s` old) says NotAvailable.
- SoCLow / SoCHigh (warning): per-site thresholds, else the global ones; only on fresh
  data of a site in the latest portfolio (DataStale says so otherwise).
- ScheduleHorizonShort (warning): a site with any schedule entry known whose plan ends
  within `horizon_short_s` (or has ended): sites nobody schedules are not judged.
- InProgressStuck (warning): entries still InProgress within `in_progress_stuck_s` of
  their start (or past it): the box has not saved them.
- ScheduleInfeasible: the forecast of a site's plan from its latest SoC leaves the
  usable range (receiver.analytics.trajectory); critical when the breach is less than
  `plan_breach_critical_s` (1 h) away, else a warning (label `breach` soon / later, as
  the two Prometheus rules); fresh data of a site in the latest portfolio only.
- DataStale (warning): a site of the portfolio not updated for `stale_after_s`; or,
  while polling, no site data at all `stale_after_s` after the start. Never without
  polling (webhooks-only mode has no master data).
- TrackingDeviation (warning): the site's delivered energy missed its plan by more than
  `tracking_deviation_ratio` over its last `tracking_window_entries` entries
  (Σ|delivered − planned| / Σ|planned|, receiver.analytics.delivery).
- ApiDown (critical): a poller without success for max(`api_down_after_s`, two of its
  intervals), counted from the start at the latest, while the API's attempts have been
  failing without an answer (any status below 500 is one, 429 included) for
  `api_down_after_s`.
- AuthFailing (critical): the API or the token service refuses the credentials.
- RefreshTokenExpiring (warning): the refresh token expires within
  `refresh_token_expiring_s`.
- WebhookSilence (warning): some site has a plan ahead but no webhook was accepted for
  `webhook_silence_s`, counted from the start at the latest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from receiver.alerting.catalogue import spec
from receiver.alerting.model import (
    Alert,
    FleetView,
    PollerView,
    ServiceView,
    Severity,
    SiteView,
    Thresholds,
)

SiteRule = Callable[[SiteView, ServiceView, Thresholds, datetime], Iterable[Alert]]
ServiceRule = Callable[[ServiceView, Thresholds, datetime], Iterable[Alert]]
FleetRule = Callable[[FleetView, Thresholds, datetime], Iterable[Alert]]


def when(moment: datetime) -> str:
    """`moment` as the alerts print it: in UTC, to the minute (naive means UTC)."""
    return _when(moment, moment.utcoffset())


@lru_cache(maxsize=16_384)
def _when(moment: datetime, _offset: timedelta | None) -> str:
    """`when`, remembered: a failure storm formats the same few thousand moments every
    cycle, and strftime was most of the rules' time. The offset is part of the key:
    equal instants in other zones compare equal but must be converted first."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
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
        runbook_url=spec(rule).runbook_url,
    )


def _older(moment: datetime | None, seconds: float, now: datetime) -> bool:
    """True when `moment` is unknown or more than `seconds` before `now`."""
    return moment is None or (now - moment).total_seconds() > seconds


def _stale(site: SiteView, th: Thresholds, now: datetime) -> bool:
    return _older(site.last_update, th.stale_after_s, now)


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
    site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    # An old availability is no longer news (the gauges drop it too): DataStale says so.
    if site.available or _older(site.availability_at, th.stale_after_s, now):
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
    if site.soc_ratio is None or not site.in_portfolio or _stale(site, th, now):
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
    site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    if not site.scheduled:  # nobody schedules this site: its idling is not news
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


def schedule_infeasible(
    site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    breach = site.plan_breach
    if breach is None or not site.in_portfolio or _stale(site, th, now):
        return
    left = (breach.at - now).total_seconds()
    soon = left < th.plan_breach_critical_s
    empties = "empties" if breach.limit == "empty" else "fills up"
    in_ = f"in {duration(left)}" if left > 0 else "now"
    what = (
        f"the plan cannot be delivered: the battery {empties} at {when(breach.at)} ({in_}), "
        f"during the entry {when(breach.entry_start)} – {when(breach.entry_end)} at "
        f"{breach.power_kw:g} kW; shortfall {breach.shortfall_kwh:.1f} kWh"
    )
    verb = "discharges" if breach.limit == "empty" else "charges"
    check = (
        f"the schedule's {verb} against the site's state of charge and capacity; re-plan "
        "that entry and the rest (cellect-monitor schedule validate FILE --site N)."
    )
    severity = Severity.CRITICAL if soon else Severity.WARNING
    since = breach.since
    if soon:
        since = max(since, breach.at - timedelta(seconds=th.plan_breach_critical_s))
    label = "soon" if soon else "later"
    yield _site_alert("ScheduleInfeasible", severity, site, since, what, check, breach=label)


def data_stale(site: SiteView, svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    # Only sites a portfolio poll has shown: a site heard of by webhook alone has no
    # master data to go stale (and no cellect_site_last_update_timestamp_seconds).
    if not svc.polling or site.last_update is None or not _stale(site, th, now):
        return
    what, since = f"no update since {when(site.last_update)}", site.last_update
    check = "the pollers (cellect_poll_last_success_timestamp_seconds) and webhook deliveries."
    if not site.in_portfolio:
        what = f"{what}: Cellect reports no live data (left out of PortfolioOverview)"
        check = "the site's Cellect Box (power, network link): it is offline or not reporting."
    yield _site_alert("DataStale", Severity.WARNING, site, since, what, check)


def tracking_deviation(
    site: SiteView, _svc: ServiceView, th: Thresholds, now: datetime
) -> Iterable[Alert]:
    error = site.tracking_error
    if error is None or error <= th.tracking_deviation_ratio:
        return
    what = (
        f"delivered energy missed the plan by {error:.1%} over its last "
        f"{th.tracking_window_entries} entries (threshold {th.tracking_deviation_ratio:.0%})"
    )
    check = (
        "the site's inverter and BMS limits (a derated inverter, a battery at its SoC "
        "limits), then whether the plan asks what the site can deliver."
    )
    since = site.tracking_at or now
    yield _site_alert("TrackingDeviation", Severity.WARNING, site, since, what, check)


SITE_RULES: tuple[SiteRule, ...] = (
    implementation_failed,
    site_unavailable,
    soc_bounds,
    horizon_short,
    in_progress_stuck,
    schedule_infeasible,
    data_stale,
    tracking_deviation,
)


def _service_alert(rule: str, severity: Severity, since: datetime, what: str, check: str) -> Alert:
    return Alert(
        rule=rule,
        severity=severity,
        labels={},
        summary=f"{rule}: {what}",
        description=f"{what} since {when(since)}. Check: {check}",
        since=since,
        runbook_url=spec(rule).runbook_url,
    )


def _overdue(poller: PollerView, start: datetime, th: Thresholds, now: datetime) -> bool:
    """No success for max(api_down_after_s, two intervals), from the start at the latest."""
    allowance = max(th.api_down_after_s, 2 * poller.interval_s)
    return _older(poller.last_success or start, allowance, now)


def api_down(svc: ServiceView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    start = svc.started_at
    if start is None:
        return
    failing = svc.api_failing_since
    if failing is None or not _older(failing, th.api_down_after_s, now):
        return
    overdue = [p.name for p in svc.pollers if _overdue(p, start, th, now)]
    if not overdue:
        return
    what = f"the Cellect Partner API does not answer; pollers overdue: {', '.join(overdue)}"
    check = "cellect_api_requests_total by endpoint and code, the network and CELLECT_API_URL."
    yield _service_alert("ApiDown", Severity.CRITICAL, failing, what, check)


def auth_failing(svc: ServiceView, _th: Thresholds, _now: datetime) -> Iterable[Alert]:
    if svc.auth_refused_since is None:
        return
    what = "the Cellect Partner API refuses the monitor's credentials"
    check = "CELLECT_REFRESH_TOKEN (expired or revoked?) and CELLECT_TOKEN_URL."
    yield _service_alert("AuthFailing", Severity.CRITICAL, svc.auth_refused_since, what, check)


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


SERVICE_RULES: tuple[ServiceRule, ...] = (api_down, auth_failing, refresh_token_expiring)


def webhook_silence(view: FleetView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    svc = view.service
    last = svc.last_webhook_at or svc.started_at
    if last is None or not _older(last, th.webhook_silence_s, now):
        return
    # Only while a plan lies ahead: then Cellect has entry outcomes to report.
    if not any(s.horizon_end is not None and s.horizon_end > now for s in view.sites):
        return
    what = "no Cellect webhook accepted" + (
        " since the start" if svc.last_webhook_at is None else ""
    )
    check = "the webhook URL registered with Cellect (`cellect-monitor webhooks url`), its secret."
    yield _service_alert("WebhookSilence", Severity.WARNING, last, what, check)


def no_site_data(view: FleetView, th: Thresholds, now: datetime) -> Iterable[Alert]:
    """DataStale without a site: polling, yet no portfolio has shown any site since the start."""
    svc = view.service
    if not svc.polling or any(s.last_update is not None for s in view.sites):
        return
    if svc.started_at is None or not _older(svc.started_at, th.stale_after_s, now):
        return
    what = "no site data: no PortfolioOverview has listed any site"
    check = "the portfolio poller (cellect_poll_last_success_timestamp_seconds) and the account."
    yield _service_alert("DataStale", Severity.WARNING, svc.started_at, what, check)


FLEET_RULES: tuple[FleetRule, ...] = (webhook_silence, no_site_data)


RuleError = Callable[[str, BaseException], None]


def _reraise(rule: str, exc: BaseException) -> None:
    raise exc


# The alerts each rule function judges, for reporting its failures by name.
RULE_NAMES = {
    "implementation_failed": "ImplementationFailed",
    "site_unavailable": "SiteUnavailable",
    "soc_bounds": "SoCLow/SoCHigh",
    "horizon_short": "ScheduleHorizonShort",
    "in_progress_stuck": "InProgressStuck",
    "schedule_infeasible": "ScheduleInfeasible",
    "data_stale": "DataStale",
    "tracking_deviation": "TrackingDeviation",
    "no_site_data": "DataStale",
    "api_down": "ApiDown",
    "auth_failing": "AuthFailing",
    "refresh_token_expiring": "RefreshTokenExpiring",
    "webhook_silence": "WebhookSilence",
}


def evaluate(
    view: FleetView, thresholds: Thresholds, now: datetime, on_error: RuleError = _reraise
) -> list[Alert]:
    """Every alert whose condition holds at `now`, service alerts first.

    Each rule runs in its own guard, per site: one that raises (on data no rule foresaw)
    is reported to `on_error` with its name, and every other rule and site is judged as
    ever — one poisoned site must not switch alerting off. The default re-raises.
    """
    alerts: list[Alert] = []

    def judge(rule: Callable[..., Iterable[Alert]], *args: object) -> None:
        try:
            alerts.extend(rule(*args, thresholds, now))
        except Exception as exc:
            on_error(RULE_NAMES.get(rule.__name__, rule.__name__), exc)

    for service_rule in SERVICE_RULES:
        judge(service_rule, view.service)
    for fleet_rule in FLEET_RULES:
        judge(fleet_rule, view)
    for site in view.sites:
        for site_rule in SITE_RULES:
            judge(site_rule, site, view.service)
    return alerts
