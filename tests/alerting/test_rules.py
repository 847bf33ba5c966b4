"""The built-in rules: which alerts a fleet snapshot yields, with what labels and text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from receiver.alerting.catalogue import spec
from receiver.alerting.model import (
    Alert,
    Downtime,
    FailureRun,
    FleetView,
    ImplementationFailure,
    PollerView,
    ServiceView,
    Severity,
    SiteView,
    Thresholds,
)
from receiver.alerting.rules import evaluate, when

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TH = Thresholds(site_soc={7: (0.3, 0.8)})
FRESH = NOW - timedelta(seconds=30)
HOUR = timedelta(hours=1)
# A monitor that started an hour ago and polls, all pollers fine, webhooks flowing.
SERVICE = ServiceView(
    started_at=NOW - HOUR,
    pollers=(PollerView("portfolio", 60.0, FRESH), PollerView("ex_post", 900.0, FRESH)),
    last_webhook_at=FRESH,
)


def site(**kw: object) -> SiteView:
    base: dict[str, object] = {
        "site_id": 7,
        "name": "Alpha",
        "soc_ratio": 0.5,
        "last_update": FRESH,
        "availability_at": FRESH,
        "scheduled": True,
        "horizon_end": NOW + timedelta(hours=24),
    }
    base.update(kw)
    return SiteView(**base)  # type: ignore[arg-type]


def service(**kw: object) -> ServiceView:
    base = {name: getattr(SERVICE, name) for name in SERVICE.__dataclass_fields__}
    base.update(kw)
    return ServiceView(**base)  # type: ignore[arg-type]


def rules_of(view: FleetView, now: datetime = NOW) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = {}
    for alert in evaluate(view, TH, now):
        out.setdefault(alert.rule, []).append(alert)
    return out


def fleet(*sites: SiteView, svc: ServiceView = SERVICE) -> FleetView:
    return FleetView(sites=sites, service=svc)


def test_healthy_fleet_yields_nothing() -> None:
    """A fresh, available site with a long plan and SoC in range raises no alert."""
    assert evaluate(fleet(site()), TH, NOW) == []


def test_unplanned_unavailability_is_critical_and_names_reason_and_source() -> None:
    """An unplanned downtime is critical and its text names reason, source, site and since."""
    since = NOW - timedelta(minutes=10)
    down = site(
        available=False, downtime=Downtime(False, "Outage", "Inverter"), unavailable_since=since
    )
    [alert] = evaluate(fleet(down), TH, NOW)
    assert (alert.rule, alert.severity) == ("SiteUnavailable", Severity.CRITICAL)
    assert alert.labels["site_id"] == "7"
    assert alert.labels["site_name"] == "Alpha"
    text = alert.summary + alert.description
    for part in ("Outage", "Inverter", "Alpha", "2024-05-01 11:50 UTC", "Check:"):
        assert part in text


def test_planned_unavailability_is_a_warning() -> None:
    """A planned downtime is a warning, and a different alert from an unplanned one."""
    planned = site(available=False, downtime=Downtime(True, "Maintenance", "ESS"))
    unplanned = site(available=False)
    [a] = evaluate(fleet(planned), TH, NOW)
    [b] = evaluate(fleet(unplanned), TH, NOW)
    assert a.severity is Severity.WARNING
    assert b.severity is Severity.CRITICAL
    assert a.fingerprint != b.fingerprint
    assert "unknown" in b.description


def test_an_old_availability_is_not_judged() -> None:
    """An unavailability last polled beyond stale_after_s is no longer news (its gauges
    are gone too)."""
    old = site(available=False, availability_at=NOW - timedelta(seconds=601))
    assert rules_of(fleet(old)) == {}


def test_soc_thresholds_are_per_site_with_global_fallback() -> None:
    """Site 7 uses its own 30 %/80 % limits; site 8 the global 10 %/95 %."""
    view = fleet(site(soc_ratio=0.25), site(site_id=8, name="Beta", soc_ratio=0.25))
    assert list(rules_of(view)) == ["SoCLow"]
    assert len(rules_of(view)["SoCLow"]) == 1
    high = fleet(site(soc_ratio=0.85), site(site_id=8, name="Beta", soc_ratio=0.97))
    assert len(rules_of(high)["SoCHigh"]) == 2


def test_soc_of_a_site_left_out_of_the_portfolio_is_not_judged() -> None:
    """A site the latest portfolio left out has no live SoC (the gauge is gone too)."""
    assert rules_of(fleet(site(soc_ratio=0.01, in_portfolio=False))) == {}


def test_stale_site_reports_data_stale_not_soc() -> None:
    """A site silent beyond stale_after_s raises DataStale and its old SoC is not judged."""
    old = site(soc_ratio=0.01, last_update=NOW - timedelta(hours=1))
    assert list(rules_of(fleet(old))) == ["DataStale"]


def test_a_site_known_only_by_webhook_is_not_stale() -> None:
    """A site no portfolio poll has shown has no master data to go stale."""
    webhook_only = site(site_id=8, last_update=None, soc_ratio=None)
    assert rules_of(fleet(site(), webhook_only)) == {}


def test_nothing_goes_stale_without_polling() -> None:
    """In webhooks-only mode (no poller runs) neither a site nor the portfolio is stale."""
    svc = service(pollers=())
    old = site(last_update=NOW - timedelta(hours=1))
    assert "DataStale" not in rules_of(fleet(old, svc=svc))
    assert "DataStale" not in rules_of(fleet(svc=svc))


def test_no_site_data_after_stale_after_s_is_data_stale() -> None:
    """Polling, yet no portfolio has listed any site stale_after_s after the start: one
    DataStale without site labels; not before."""
    [alert] = rules_of(fleet())["DataStale"]
    assert alert.labels == {}
    young = service(started_at=NOW - timedelta(seconds=599))
    assert rules_of(fleet(svc=young)) == {}


def test_short_horizon_only_for_scheduled_sites() -> None:
    """A plan ending in 2 h is short; a site nobody schedules is not judged, one whose
    plan ran out is."""
    [alert] = rules_of(fleet(site(horizon_end=NOW + timedelta(hours=2))))["ScheduleHorizonShort"]
    assert "in 2 h" in str(alert)
    assert rules_of(fleet(site(scheduled=False, horizon_end=None))) == {}
    [ran_out] = rules_of(fleet(site(horizon_end=None)))["ScheduleHorizonShort"]
    assert "no planned schedule ahead" in ran_out.summary


def test_in_progress_entry_near_its_start_is_stuck() -> None:
    """An entry still InProgress 2 minutes before its start is stuck; one in an hour is not."""
    near = site(in_progress_near_start=(NOW + timedelta(minutes=2), NOW + HOUR))
    [alert] = rules_of(fleet(near))["InProgressStuck"]
    assert "1 schedule entries" in str(alert)


def test_implementation_failure_fires_per_site_then_resolves_after_the_hold() -> None:
    """A run of failures is one alert per site, named after its first entry; it drops
    out once failure_hold_s has passed since the latest failure."""
    first = ImplementationFailure(NOW, NOW + timedelta(minutes=15), at=NOW)
    latest = ImplementationFailure(NOW, NOW + timedelta(minutes=30), at=NOW + timedelta(minutes=40))
    view = fleet(site(failure_run=FailureRun(first, latest)))
    [alert] = rules_of(view, NOW + timedelta(minutes=41))["ImplementationFailed"]
    assert alert.severity is Severity.CRITICAL
    assert alert.since == NOW
    assert set(alert.labels) == {"site_id", "site_name"}
    assert f"schedule entry {when(NOW)} – {when(NOW + timedelta(minutes=15))}" in str(alert)
    assert "ImplementationFailed" in rules_of(view, NOW + timedelta(minutes=99))
    assert "ImplementationFailed" not in rules_of(view, NOW + timedelta(minutes=100))


def test_api_down_needs_an_overdue_poller_and_a_failing_api() -> None:
    """A poller without success for max(5 min, two intervals) while the API has failed
    without an answer for 5 min fires ApiDown; an answer (a 429 is one), pollers within
    their allowance, or mere time passing without a failed attempt do not."""
    stalled = PollerView("portfolio", 60.0, NOW - timedelta(seconds=301))
    failing = NOW - timedelta(seconds=301)
    [alert] = rules_of(fleet(svc=service(pollers=(stalled,), api_failing_since=failing)))["ApiDown"]
    assert "pollers overdue: portfolio" in alert.summary
    assert alert.since == failing
    assert "ApiDown" not in rules_of(fleet(svc=service(pollers=(stalled,))))
    recent = service(pollers=(stalled,), api_failing_since=NOW - timedelta(seconds=299))
    assert "ApiDown" not in rules_of(fleet(svc=recent))
    slow = PollerView("ex_post", 900.0, NOW - timedelta(seconds=1700))
    assert "ApiDown" not in rules_of(fleet(svc=service(pollers=(slow,), api_failing_since=failing)))


def test_a_poller_that_never_succeeded_is_overdue_from_the_start() -> None:
    """A poller without any success is overdue max(5 min, two intervals) after the start."""
    never = (PollerView("portfolio", 60.0, None),)
    failing = NOW - timedelta(seconds=400)
    late = service(
        started_at=NOW - timedelta(seconds=301), pollers=never, api_failing_since=failing
    )
    assert "ApiDown" in rules_of(fleet(svc=late))
    early = service(
        started_at=NOW - timedelta(seconds=299), pollers=never, api_failing_since=failing
    )
    assert "ApiDown" not in rules_of(fleet(svc=early))


def test_service_rules() -> None:
    """AuthFailing and RefreshTokenExpiring fire on their conditions."""
    svc = service(
        auth_refused_since=NOW - timedelta(minutes=10),
        refresh_token_expires_at=NOW + timedelta(days=2),
    )
    fired = rules_of(fleet(site(), svc=svc))
    assert set(fired) == {"AuthFailing", "RefreshTokenExpiring"}
    assert "in 2 days" in str(fired["RefreshTokenExpiring"])


def test_webhook_silence_counts_from_the_start_and_needs_a_plan_ahead() -> None:
    """Without any webhook, WebhookSilence fires an hour after the start, not before, and
    only while some site has a plan ahead."""
    planned = site()
    for age, fires in ((timedelta(minutes=59), False), (timedelta(minutes=61), True)):
        svc = service(started_at=NOW - age, last_webhook_at=None)
        assert ("WebhookSilence" in rules_of(fleet(planned, svc=svc))) is fires
    svc = service(started_at=NOW - 2 * HOUR, last_webhook_at=NOW - timedelta(minutes=61))
    assert "WebhookSilence" in rules_of(fleet(planned, svc=svc))
    assert "WebhookSilence" not in rules_of(fleet(site(horizon_end=None), svc=svc))


def test_every_alert_carries_its_catalogue_runbook() -> None:
    """Built-in alerts name their runbook section, as the Prometheus rules do."""
    down = site(available=False, failure_run=None)
    svc = service(auth_refused_since=NOW)
    alerts = evaluate(fleet(down, svc=svc), TH, NOW)
    assert alerts
    for alert in alerts:
        assert alert.annotations()["runbook_url"] == spec(alert.rule).runbook_url


def test_fingerprint_ignores_the_site_name() -> None:
    """Renaming a site keeps the identity of its alerts."""
    a = evaluate(fleet(site(available=False)), TH, NOW)[0]
    b = evaluate(fleet(site(available=False, name="Renamed")), TH, NOW)[0]
    assert a.fingerprint == b.fingerprint


def test_when_prints_every_instant_in_utc() -> None:
    """`when` (cached) prints an instant given in another zone converted to UTC, never
    its local fields labelled UTC."""
    utc = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    cest = utc.astimezone(timezone(timedelta(hours=2)))
    assert [when(utc), when(cest), when(utc)] == ["2024-05-01 12:00 UTC"] * 3


def test_refresh_token_expiring_names_the_expiry_in_utc() -> None:
    """An expiry configured with an offset (as CELLECT_REFRESH_TOKEN_EXPIRES_AT may be)
    is told in UTC."""
    expiry = datetime(2024, 5, 3, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    view = FleetView(service=ServiceView(refresh_token_expires_at=expiry))
    [alert] = [a for a in evaluate(view, TH, NOW) if a.rule == "RefreshTokenExpiring"]
    assert "expires at 2024-05-03 17:00 UTC" in alert.summary
