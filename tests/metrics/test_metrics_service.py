"""The service's own metrics on an injected registry: names, pre-created children, counting."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from receiver.cellect.clock import Clock
from receiver.metrics.registry import (
    ALERT_RULES,
    API_ENDPOINTS,
    NOTIFICATION_OUTCOMES,
    WEBHOOK_OUTCOMES,
    Metrics,
    metrics_endpoint,
    render_metrics,
)
from receiver.metrics.sites import Availability, ScheduleOutlook, SiteSnapshot

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# The metric catalogue of docs/metrics.md (capacity in joules: promtool rejects "hours"),
# plus the gauges the alert rules read; histograms by their _count series. Each exists
# once its value is known (`set_up` below makes every one known).
EXPECTED_NAMES = {
    "cellect_site_info", "cellect_site_state_of_charge_ratio", "cellect_site_power_watts",
    "cellect_site_energy_capacity_joules", "cellect_site_rated_charge_power_watts",
    "cellect_site_rated_discharge_power_watts", "cellect_site_available",
    "cellect_site_unavailable_info", "cellect_site_schedule_horizon_seconds",
    "cellect_schedule_entries_in_progress_near_start", "cellect_site_soc_low_threshold_ratio",
    "cellect_site_soc_high_threshold_ratio", "cellect_site_last_update_timestamp_seconds",
    "cellect_schedule_entries_total", "cellect_schedule_implementation_failures_total",
    "cellect_webhook_requests_total", "cellect_webhook_request_duration_seconds_count",
    "cellect_api_requests_total", "cellect_api_request_duration_seconds_count",
    "cellect_poll_last_success_timestamp_seconds", "cellect_access_token_expiry_timestamp_seconds",
    "cellect_alerts_firing", "cellect_notifications_total", "cellect_notification_outbox_pending",
    "cellect_poll_interval_seconds", "cellect_refresh_token_expiry_timestamp_seconds",
    "cellect_alert_threshold_seconds", "cellect_monitor_start_time_seconds",
    "cellect_api_failing_since_timestamp_seconds", "cellect_api_credentials_refused",
    "cellect_webhook_last_accepted_timestamp_seconds",
    "cellect_schedule_last_implementation_failure_timestamp_seconds",
}  # fmt: skip
# The series that exist only once their value is known: none is a 0 standing for "never".
OPTIONAL_NAMES = {
    "cellect_poll_last_success_timestamp_seconds", "cellect_poll_interval_seconds",
    "cellect_access_token_expiry_timestamp_seconds",
    "cellect_refresh_token_expiry_timestamp_seconds", "cellect_monitor_start_time_seconds",
    "cellect_api_failing_since_timestamp_seconds", "cellect_api_credentials_refused",
    "cellect_webhook_last_accepted_timestamp_seconds",
    "cellect_schedule_last_implementation_failure_timestamp_seconds",
    "cellect_site_schedule_horizon_seconds",
}  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(START)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, clock: Clock) -> Metrics:
    return Metrics(registry, now=clock.timestamp)


def one_site(metrics: Metrics, clock: Clock) -> None:
    now = clock.timestamp()
    metrics.update_sites([SiteSnapshot(7, "Seven", "DE", 52.5, 13.4, 50, 1, 100, 50, 50, now)])
    metrics.update_availability([Availability(7, available=False)])
    metrics.update_schedules([ScheduleOutlook(7, 3600.0, 0, now - 60)])


def set_up(metrics: Metrics, clock: Clock) -> None:
    """One site, and every optional series given its value (as a polling monitor would)."""
    one_site(metrics, clock)
    now = clock.timestamp()
    metrics.set_start_time(now)
    metrics.set_poll_interval("portfolio", 60.0)
    metrics.poll_succeeded("portfolio", now)
    metrics.set_access_token_expiry(now + 6 * 3600)
    metrics.set_refresh_token_expiry(now + 86400)
    metrics.set_api_failing_since("ex_ante", now)
    metrics.set_credentials_refused(False)
    metrics.set_webhook_last_accepted(now)
    metrics.set_alert_thresholds({"DataStale": 600.0})


def sample_names(body: bytes) -> set[str]:
    families = text_string_to_metric_families(body.decode("utf-8"))
    return {sample.name for family in families for sample in family.samples}


def test_every_catalogue_metric_is_exposed_after_setup(metrics: Metrics, clock: Clock) -> None:
    """With one site known and every value set, every metric of the catalogue is exposed."""
    set_up(metrics, clock)
    missing = EXPECTED_NAMES - sample_names(render_metrics(metrics))
    assert not missing


def test_optional_series_are_absent_until_known(metrics: Metrics) -> None:
    """Before any poll, token, answer, webhook or failure, none of their series exists
    (a 0 would read as 1970, or as a poller that never ran)."""
    assert sample_names(render_metrics(metrics)) & OPTIONAL_NAMES == set()


def test_a_site_without_schedule_has_no_horizon(metrics: Metrics, clock: Clock) -> None:
    """An outlook without a horizon (no schedule entry known) exports no horizon series,
    only the in-progress count; a plan that ran out exports 0."""
    now = clock.timestamp()
    metrics.update_schedules([ScheduleOutlook(7, None, 0), ScheduleOutlook(8, 0.0, 0)], now)
    body = render_metrics(metrics).decode()
    assert 'cellect_site_schedule_horizon_seconds{site_id="7"}' not in body
    assert 'cellect_site_schedule_horizon_seconds{site_id="8"} 0.0' in body
    assert 'cellect_schedule_entries_in_progress_near_start{site_id="7"} 0.0' in body


def test_label_children_exist_at_zero_before_any_event(registry: CollectorRegistry) -> None:
    """Every known outcome, endpoint and alert rule has a series at 0 from the start."""
    Metrics(registry)
    value = registry.get_sample_value
    for outcome in WEBHOOK_OUTCOMES:
        assert value("cellect_webhook_requests_total", {"outcome": outcome}) == 0
    for endpoint in API_ENDPOINTS:
        assert value("cellect_api_requests_total", {"endpoint": endpoint, "code": "200"}) == 0
        assert value("cellect_api_request_duration_seconds_count", {"endpoint": endpoint}) == 0
    for rule, severity in ALERT_RULES:
        assert value("cellect_alerts_firing", {"rule": rule, "severity": severity}) == 0
    for outcome in NOTIFICATION_OUTCOMES:
        assert value("cellect_notifications_total", {"outcome": outcome}) == 0


def test_webhook_deliveries_are_counted_and_timed(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """observe_webhook counts the outcome and adds the duration to the histogram."""
    metrics.observe_webhook("accepted", 0.01)
    metrics.observe_webhook("accepted", 0.03)
    metrics.observe_webhook("unauthorized", 0.001)
    value = registry.get_sample_value
    assert value("cellect_webhook_requests_total", {"outcome": "accepted"}) == 2
    assert value("cellect_webhook_requests_total", {"outcome": "unauthorized"}) == 1
    assert value("cellect_webhook_request_duration_seconds_count") == 3
    assert value("cellect_webhook_request_duration_seconds_sum") == pytest.approx(0.041)


def test_api_requests_are_counted_by_endpoint_and_code(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """observe_api labels by endpoint and the status as a string, or error/timeout."""
    metrics.observe_api("ex_ante", 503, 0.2)
    metrics.observe_api("ex_ante", "timeout", 10.0)
    metrics.observe_api("access_token", 200, 0.1)
    value = registry.get_sample_value
    assert value("cellect_api_requests_total", {"endpoint": "ex_ante", "code": "503"}) == 1
    assert value("cellect_api_requests_total", {"endpoint": "ex_ante", "code": "timeout"}) == 1
    assert value("cellect_api_requests_total", {"endpoint": "access_token", "code": "200"}) == 1
    assert value("cellect_api_request_duration_seconds_count", {"endpoint": "ex_ante"}) == 2


def test_alerts_firing_are_replaced_as_a_whole(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """set_alerts_firing sets the named rules and returns the others to 0."""
    metrics.set_alerts_firing({("SoCLow", "warning"): 3, ("ApiDown", "critical"): 1})
    metrics.set_alerts_firing({("SoCLow", "warning"): 2})
    value = registry.get_sample_value
    assert value("cellect_alerts_firing", {"rule": "SoCLow", "severity": "warning"}) == 2
    assert value("cellect_alerts_firing", {"rule": "ApiDown", "severity": "critical"}) == 0


def test_refresh_token_expiry_is_absent_until_known(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """No refresh-token expiry series exists (rather than a 1970 one) until it is set."""
    name = "cellect_refresh_token_expiry_timestamp_seconds"
    assert registry.get_sample_value(name) is None
    metrics.set_refresh_token_expiry(1_800_000_000.0)
    assert registry.get_sample_value(name) == 1_800_000_000.0
    metrics.set_refresh_token_expiry(None)
    assert name not in sample_names(render_metrics(metrics))


def test_health_gauges_and_notifications(metrics: Metrics, registry: CollectorRegistry) -> None:
    """Poll success, poll interval, token expiry, outbox and notifications reach the registry."""
    metrics.poll_succeeded("events", 1_750_000_000.0)
    metrics.set_poll_interval("events", 60.0)
    metrics.set_access_token_expiry(1_750_021_600.0)
    metrics.set_outbox_pending(4)
    metrics.notification("sent")
    metrics.notification("dead")
    value = registry.get_sample_value
    assert value("cellect_poll_last_success_timestamp_seconds", {"poller": "events"}) == 1.75e9
    assert value("cellect_poll_interval_seconds", {"poller": "events"}) == 60.0
    assert value("cellect_access_token_expiry_timestamp_seconds") == 1_750_021_600.0
    assert value("cellect_notification_outbox_pending") == 4
    assert value("cellect_notifications_total", {"outcome": "dead"}) == 1


def test_two_instances_live_side_by_side_on_their_own_registries() -> None:
    """Metrics registers nothing globally: two instances in one process do not clash."""
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    first.observe_webhook("accepted", 0.1)
    labels = {"outcome": "accepted"}
    assert second.registry.get_sample_value("cellect_webhook_requests_total", labels) == 0


@pytest.mark.anyio
async def test_metrics_endpoint_serves_the_exposition(metrics: Metrics, clock: Clock) -> None:
    """The Starlette endpoint answers 200 with the text format and the site series."""
    one_site(metrics, clock)
    app = Starlette(routes=[Route("/metrics", metrics_endpoint(metrics))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'cellect_site_power_watts{site_id="7"} 1000.0' in response.text


@pytest.mark.anyio
async def test_metrics_endpoint_sends_the_cached_pieces_whole_and_in_order(
    metrics: Metrics, clock: Clock
) -> None:
    """The body goes out as the collectors' cached pieces, unjoined: together they are
    exactly the exposition, Content-Length counts them all, and HEAD sends none."""
    one_site(metrics, clock)
    app = Starlette(routes=[Route("/metrics", metrics_endpoint(metrics), methods=["GET", "HEAD"])])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [],
             "query_string": b"", "root_path": ""}  # fmt: skip
    await app(scope, receive, send)
    start, *bodies = sent
    assert start["status"] == 200
    whole = b"".join(bytes(b["body"]) for b in bodies)  # type: ignore[call-overload]
    assert whole == render_metrics(metrics)
    assert len(bodies) > 2, "the pieces, not one joined copy"
    assert [b.get("more_body", False) for b in bodies] == [True] * (len(bodies) - 1) + [False]
    headers = dict(start["headers"])  # type: ignore[call-overload]
    assert headers[b"content-length"] == str(len(whole)).encode()

    sent.clear()
    await app({**scope, "method": "HEAD"}, receive, send)
    start, *bodies = sent
    assert dict(start["headers"])[b"content-length"] == str(len(whole)).encode()  # type: ignore[call-overload]
    assert b"".join(bytes(b["body"]) for b in bodies) == b""  # type: ignore[call-overload]
