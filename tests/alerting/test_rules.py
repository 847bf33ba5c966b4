"""The built-in rules: which alerts a fleet snapshot yields, with what labels and text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from receiver.alerting.model import (
    Alert,
    Downtime,
    FailureRun,
    FleetView,
    ImplementationFailure,
    ServiceView,
    Severity,
    SiteView,
    Thresholds,
)
from receiver.alerting.rules import evaluate, when

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TH = Thresholds(site_soc={7: (0.3, 0.8)})
FRESH = NOW - timedelta(seconds=30)


def site(**kw: object) -> SiteView:
    base: dict[str, object] = {
        "site_id": 7,
        "name": "Alpha",
        "soc_ratio": 0.5,
        "last_update": FRESH,
        "horizon_end": NOW + timedelta(hours=24),
    }
    base.update(kw)
    return SiteView(**base)  # type: ignore[arg-type]


def rules_of(view: FleetView, now: datetime = NOW) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = {}
    for alert in evaluate(view, TH, now):
        out.setdefault(alert.rule, []).append(alert)
    return out


def test_healthy_fleet_yields_nothing() -> None:
    """A fresh, available site with a long plan and SoC in range raises no alert."""
    assert (
        evaluate(FleetView(sites=(site(),), service=ServiceView(schedules_exist=True)), TH, NOW)
        == []
    )


def test_unplanned_unavailability_is_critical_and_names_reason_and_source() -> None:
    """An unplanned downtime is critical and its text names reason, source, site and since."""
    since = NOW - timedelta(minutes=10)
    down = site(
        available=False, downtime=Downtime(False, "Outage", "Inverter"), unavailable_since=since
    )
    [alert] = evaluate(FleetView(sites=(down,)), TH, NOW)
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
    [a] = evaluate(FleetView(sites=(planned,)), TH, NOW)
    [b] = evaluate(FleetView(sites=(unplanned,)), TH, NOW)
    assert a.severity is Severity.WARNING
    assert b.severity is Severity.CRITICAL
    assert a.fingerprint != b.fingerprint
    assert "unknown" in b.description


def test_soc_thresholds_are_per_site_with_global_fallback() -> None:
    """Site 7 uses its own 30 %/80 % limits; site 8 the global 10 %/95 %."""
    view = FleetView(sites=(site(soc_ratio=0.25), site(site_id=8, name="Beta", soc_ratio=0.25)))
    assert list(rules_of(view)) == ["SoCLow"]
    assert len(rules_of(view)["SoCLow"]) == 1
    high = FleetView(sites=(site(soc_ratio=0.85), site(site_id=8, name="Beta", soc_ratio=0.97)))
    assert len(rules_of(high)["SoCHigh"]) == 2


def test_stale_site_reports_data_stale_not_soc() -> None:
    """A site silent beyond stale_after_s raises DataStale and its old SoC is not judged."""
    old = site(soc_ratio=0.01, last_update=NOW - timedelta(hours=1))
    assert list(rules_of(FleetView(sites=(old,)))) == ["DataStale"]


def test_short_horizon_only_when_schedules_exist() -> None:
    """A plan ending in 2 h is short once the partner schedules at all."""
    short = site(horizon_end=NOW + timedelta(hours=2))
    assert rules_of(FleetView(sites=(short,))) == {}
    [alert] = rules_of(
        FleetView(sites=(short,), service=ServiceView(schedules_exist=True, last_webhook_at=NOW))
    )["ScheduleHorizonShort"]
    assert "in 2 h" in str(alert)


def test_in_progress_entry_near_its_start_is_stuck() -> None:
    """An entry still InProgress 2 minutes before its start is stuck; one in an hour is not."""
    near = site(in_progress_near_start=(NOW + timedelta(minutes=2), NOW + timedelta(hours=1)))
    [alert] = rules_of(FleetView(sites=(near,)))["InProgressStuck"]
    assert "1 schedule entries" in str(alert)


def test_implementation_failure_fires_per_site_then_resolves_after_the_hold() -> None:
    """A run of failures is one alert per site, named after its first entry; it drops
    out once failure_hold_s has passed since the latest failure."""
    first = ImplementationFailure(NOW, NOW + timedelta(minutes=15), at=NOW)
    latest = ImplementationFailure(NOW, NOW + timedelta(minutes=30), at=NOW + timedelta(minutes=40))
    view = FleetView(sites=(site(failure_run=FailureRun(first, latest)),))
    [alert] = rules_of(view, NOW + timedelta(minutes=41))["ImplementationFailed"]
    assert alert.severity is Severity.CRITICAL
    assert alert.since == NOW
    assert set(alert.labels) == {"site_id", "site_name"}
    assert f"schedule entry {when(NOW)} – {when(NOW + timedelta(minutes=15))}" in str(alert)
    assert "ImplementationFailed" in rules_of(view, NOW + timedelta(minutes=99))
    assert "ImplementationFailed" not in rules_of(view, NOW + timedelta(minutes=100))


def test_service_rules() -> None:
    """ApiDown, AuthFailing, RefreshTokenExpiring and WebhookSilence fire on their conditions."""
    svc = ServiceView(
        api_last_success=NOW - timedelta(minutes=10),
        api_consecutive_failures=5,
        auth_failing=True,
        refresh_token_expires_at=NOW + timedelta(days=2),
        last_webhook_at=NOW - timedelta(hours=2),
        schedules_exist=True,
    )
    fired = rules_of(FleetView(service=svc))
    assert set(fired) == {"ApiDown", "AuthFailing", "RefreshTokenExpiring", "WebhookSilence"}
    assert "in 2 days" in str(fired["RefreshTokenExpiring"])


def test_fingerprint_ignores_the_site_name() -> None:
    """Renaming a site keeps the identity of its alerts."""
    a = evaluate(FleetView(sites=(site(available=False),)), TH, NOW)[0]
    b = evaluate(FleetView(sites=(site(available=False, name="Renamed"),)), TH, NOW)[0]
    assert a.fingerprint == b.fingerprint


def test_when_remembers_equal_instants_in_other_zones_apart() -> None:
    """`when` is cached; an equal instant in another zone still prints its own fields
    (the rules pass UTC; this pins only that the cache does not mix them up)."""
    utc = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    cest = utc.astimezone(timezone(timedelta(hours=2)))
    assert [when(utc), when(cest), when(utc)] == [
        "2024-05-01 12:00 UTC",
        "2024-05-01 14:00 UTC",
        "2024-05-01 12:00 UTC",
    ]
