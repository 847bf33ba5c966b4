"""The built-in TrackingDeviation rule: above the share it fires, at or below it does not."""

from __future__ import annotations

from datetime import UTC, datetime

from receiver.alerting.model import FleetView, Severity, SiteView, Thresholds
from receiver.alerting.rules import evaluate

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ENDED = datetime(2026, 3, 2, 7, 45, tzinfo=UTC)


def judged(error: float | None, threshold: float = 0.10) -> list[tuple[str, str]]:
    site = SiteView(1, "Alpha", tracking_error=error, tracking_at=ENDED)
    alerts = evaluate(FleetView(sites=(site,)), Thresholds(tracking_deviation_ratio=threshold), NOW)
    return [(a.labels["site_id"], a.description) for a in alerts if a.rule == "TrackingDeviation"]


def test_a_site_missing_its_plan_by_more_than_the_share_fires() -> None:
    """20 % missed over the window against 10 %: a warning naming the site, since the end
    of the newest entry counted."""
    site = SiteView(1, "Alpha", tracking_error=0.2, tracking_at=ENDED)
    [alert] = [
        a
        for a in evaluate(FleetView(sites=(site,)), Thresholds(), NOW)
        if a.rule == "TrackingDeviation"
    ]
    assert alert.severity is Severity.WARNING
    assert alert.labels == {"site_id": "1", "site_name": "Alpha"}
    assert "missed the plan by 20.0%" in alert.summary
    assert alert.since == ENDED


def test_within_the_share_or_unknown_is_silent() -> None:
    """At the threshold, below it, or with no entry computed yet: nothing."""
    assert judged(0.10) == []
    assert judged(0.03) == []
    assert judged(None) == []
    assert judged(0.2, threshold=0.25) == []
