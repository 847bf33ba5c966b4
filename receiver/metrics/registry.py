"""cellect-monitor's Prometheus metrics: the service's own health, schedule outcomes, and the
site-state collector, all on one injected `CollectorRegistry`; plus the /metrics endpoint.

The registry part (a few dozen series) goes through `prometheus_client.generate_latest`;
the per-site families (about 20 series per site) come from collectors that cache their
exposition text, so a scrape at 10,000 sites does not re-render 200,000 lines. The same
collectors also answer `registry.collect()` normally, so `registry.get_sample_value(...)`
and any other exporter see every family.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from receiver.alerting.catalogue import RATIO_THRESHOLD_METRIC, THRESHOLD_METRIC, builtin_pairs
from receiver.cellect.enums import ImplementationStatus
from receiver.metrics.energy import EnergyCollector
from receiver.metrics.exposition import fast_render
from receiver.metrics.leases import ReplicaCollector, ReplicaState
from receiver.metrics.schedules import ScheduleCounters
from receiver.metrics.sites import (
    Availability,
    NextPlannedOutage,
    PlanForecast,
    ScheduleOutlook,
    SiteCollector,
    SiteSnapshot,
)
from receiver.vendor.metrics import ClientMetrics

# What we serve is the classic 0.0.4 text format (prometheus_client's own default answer).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

WEBHOOK_OUTCOMES = (
    "accepted",
    "duplicate",
    "unauthorized",
    "forbidden",
    "invalid",
    "too_large",
    "error",
)
API_ENDPOINTS = (
    "access_token",
    "store_time_series",
    "delete_time_series",
    "ex_ante",
    "ex_post",
    "site_information",
    "portfolio_overview",
    "availability",
)
API_PRECREATED_CODES = ("200", "error", "timeout")
ALERT_RULES = builtin_pairs()  # the catalogue's (rule, severity) the built-in engine fires
NOTIFICATION_OUTCOMES = ("sent", "failed", "dead")


class _OptionalGauge(Collector):
    """An unlabelled gauge that is absent until its value is known (a 0 would mean 1970,
    or a failure that never happened)."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self.value: float | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation)
        if self.value is not None:
            family.add_metric((), self.value)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation)


class WriterHealth(Collector):
    """The webhook writer's state, read from the parts that know it at each scrape."""

    def __init__(self, up: Callable[[], bool], restarts: Callable[[], int],
                 queued: Callable[[], tuple[int, int]]) -> None:  # fmt: skip
        self._up, self._restarts, self._queued = up, restarts, queued

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        depth, size = self._queued()
        values = (float(self._up()), float(self._restarts()), float(depth), float(size))
        for family, value in zip(families, values, strict=True):
            family.add_metric((), value)
        yield from families

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    @staticmethod
    def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
        return [
            GaugeMetricFamily(
                "cellect_webhook_writer_up",
                "1 while the webhook writer process runs and answers within the commit timeout.",
            ),
            CounterMetricFamily(
                "cellect_webhook_writer_restarts", "Webhook writer processes started anew."
            ),
            GaugeMetricFamily(
                "cellect_webhook_queue_deliveries", "Webhook deliveries waiting for a commit."
            ),
            GaugeMetricFamily(
                "cellect_webhook_queue_bytes", "Bytes of the webhook deliveries waiting."
            ),
        ]


class Metrics:
    """Every metric of the service, registered on `registry` (a fresh one per test)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        now: Callable[[], float] = time.time,
        stale_after_s: float = 600.0,
    ) -> None:
        self.registry = registry
        self._service_metrics(registry)
        # The Cellect client's observer: retries, circuit, pauses (receiver.vendor.metrics).
        self.client = ClientMetrics(registry, now, API_ENDPOINTS)
        self.sites = SiteCollector(now, stale_after_s)
        self.schedules = ScheduleCounters()
        self.energy = EnergyCollector()  # delivered against planned (receiver.metrics.energy)
        optional = (
            self.start_time,
            self.access_token_expiry,
            self.refresh_token_expiry,
            self.credentials_refused,
            self.webhook_last_accepted,
        )
        for collector in (*optional, self.sites, self.schedules, self.energy):
            registry.register(collector)
        self._precreate()

    def _service_metrics(self, r: CollectorRegistry) -> None:
        self.webhook_requests = Counter(
            "cellect_webhook_requests", "Webhook deliveries by outcome.", ["outcome"], registry=r
        )
        self.webhook_duration = Histogram(
            "cellect_webhook_request_duration_seconds",
            "Time to handle a webhook delivery.",
            registry=r,
        )
        self.webhook_commit_duration = Histogram(
            "cellect_webhook_commit_duration_seconds",
            "Time from handing a batch of deliveries to the writer to its committed answer.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.api_requests = Counter(
            "cellect_api_requests",
            "Requests to the Cellect API by endpoint and HTTP status (or error/timeout).",
            ["endpoint", "code"],
            registry=r,
        )
        self.api_duration = Histogram(
            "cellect_api_request_duration_seconds",
            "Cellect API request latency.",
            ["endpoint"],
            registry=r,
        )
        # Pollers' series exist only for the pollers that run (none in webhooks-only
        # mode), and a last success only after the first one: no 1970 placeholder.
        self.poll_last_success = Gauge(
            "cellect_poll_last_success_timestamp_seconds",
            "When each poller last completed.",
            ["poller"],
            registry=r,
        )
        self.poll_interval = Gauge(
            "cellect_poll_interval_seconds",
            "Each running poller's configured interval.",
            ["poller"],
            registry=r,
        )
        self.alert_thresholds = Gauge(
            THRESHOLD_METRIC,
            "The alert rules' thresholds, from the monitor's settings (CELLECT_*).",
            ["rule"],
            registry=r,
        )
        self.alert_ratios = Gauge(
            RATIO_THRESHOLD_METRIC,
            "The alert rules' thresholds that are shares, from the monitor's settings.",
            ["rule"],
            registry=r,
        )
        self.start_time = _OptionalGauge(
            "cellect_monitor_start_time_seconds", "When the monitor started, on its clock."
        )
        self.access_token_expiry = _OptionalGauge(
            "cellect_access_token_expiry_timestamp_seconds",
            "When the current access token expires (absent before the first one).",
        )
        self.refresh_token_expiry = _OptionalGauge(
            "cellect_refresh_token_expiry_timestamp_seconds",
            "When the configured refresh token expires (absent while unknown).",
        )
        self.api_failing_since = Gauge(
            "cellect_api_failing_since_timestamp_seconds",
            "Since when an endpoint of the Cellect API gives no answer (5xx, timeouts, "
            "connection errors); absent once it answers or any request succeeds.",
            ["endpoint"],
            registry=r,
        )
        self.credentials_refused = _OptionalGauge(
            "cellect_api_credentials_refused",
            "1 while the Cellect API refuses the monitor's credentials (only while polling).",
        )
        self.webhook_last_accepted = _OptionalGauge(
            "cellect_webhook_last_accepted_timestamp_seconds",
            "When a webhook delivery was last accepted.",
        )
        self.alerts_firing = Gauge(
            "cellect_alerts_firing",
            "Alerts firing in the built-in engine, by rule and severity.",
            ["rule", "severity"],
            registry=r,
        )
        self.alert_rule_errors = Counter(
            "cellect_alert_rule_errors",
            "Alert rule evaluations that raised (per site and cycle), by rule.",
            ["rule"],
            registry=r,
        )
        self.untracked_site_reports = Counter(
            "cellect_untracked_site_reports",
            "Webhook status reports for sites stored but not tracked (outside the portfolio, "
            "or past CELLECT_MAX_SITES without polling).",
            registry=r,
        )
        self.notifications = Counter(
            "cellect_notifications", "Alert notifications by outcome.", ["outcome"], registry=r
        )
        self.outbox_pending = Gauge(
            "cellect_notification_outbox_pending",
            "Notifications waiting in the outbox.",
            registry=r,
        )

    def _precreate(self) -> None:
        """Create every known label child at 0, so rate() and absent() work from the start."""
        # Children by outcome, kept: observe_webhook runs for every delivery, and
        # `labels()` validates and looks up its arguments on every call.
        self._webhook_outcomes = {o: self.webhook_requests.labels(o) for o in WEBHOOK_OUTCOMES}
        for endpoint in API_ENDPOINTS:
            self.api_duration.labels(endpoint)
            for code in API_PRECREATED_CODES:
                self.api_requests.labels(endpoint, code)
        for rule, severity in ALERT_RULES:
            self.alerts_firing.labels(rule, severity)
        for outcome in NOTIFICATION_OUTCOMES:
            self.notifications.labels(outcome)

    # The service's own health.

    def watch_writer(self, health: WriterHealth) -> None:
        self.registry.register(health)

    def watch_replica(self, state: Callable[[], ReplicaState]) -> None:
        """Export this replica's coordination (receiver.metrics.leases), read at scrape."""
        self.registry.register(ReplicaCollector(state))

    def observe_webhook(self, outcome: str, seconds: float) -> None:
        """One webhook delivery handled with `outcome` (one of WEBHOOK_OUTCOMES)."""
        child = self._webhook_outcomes.get(outcome) or self.webhook_requests.labels(outcome)
        child.inc()
        self.webhook_duration.observe(seconds)

    def observe_api(self, endpoint: str, code: int | str, seconds: float) -> None:
        """One Cellect API request: `code` is the HTTP status, or "error" / "timeout"."""
        self.api_requests.labels(endpoint, str(code)).inc()
        self.api_duration.labels(endpoint).observe(seconds)

    def poll_succeeded(self, poller: str, at: float) -> None:
        self.poll_last_success.labels(poller).set(at)

    def set_poll_interval(self, poller: str, seconds: float) -> None:
        self.poll_interval.labels(poller).set(seconds)

    def set_access_token_expiry(self, at: float) -> None:
        self.access_token_expiry.value = at

    def set_refresh_token_expiry(self, at: float | None) -> None:
        self.refresh_token_expiry.value = at

    def set_start_time(self, at: float) -> None:
        self.start_time.value = at

    def set_api_failing_since(self, endpoint: str, at: float | None) -> None:
        """`endpoint` fails since `at` (a Unix time); None: it answers again (no series)."""
        if at is None:
            self.api_failing_since.remove(endpoint)
        else:
            self.api_failing_since.labels(endpoint).set(at)

    def set_credentials_refused(self, refused: bool) -> None:
        self.credentials_refused.value = 1.0 if refused else 0.0

    def set_webhook_last_accepted(self, at: float) -> None:
        self.webhook_last_accepted.value = at

    def set_alert_thresholds(self, thresholds: Mapping[str, float]) -> None:
        """`{rule: seconds}`: the thresholds the Prometheus rules read (catalogue.py)."""
        for rule, seconds in thresholds.items():
            self.alert_thresholds.labels(rule).set(seconds)

    def set_alert_ratios(self, ratios: Mapping[str, float]) -> None:
        """`{rule: share}`: the thresholds that are ratios (catalogue.py)."""
        for rule, ratio in ratios.items():
            self.alert_ratios.labels(rule).set(ratio)

    def set_alerts_firing(self, firing: Mapping[tuple[str, str], int]) -> None:
        """Replace the firing counts: `{(rule, severity): n}`; catalogue rules not named are 0."""
        for rule, severity in {*ALERT_RULES, *firing}:
            self.alerts_firing.labels(rule, severity).set(firing.get((rule, severity), 0))

    def untracked_site_report(self) -> None:
        self.untracked_site_reports.inc()

    def rule_error(self, rule: str) -> None:
        self.alert_rule_errors.labels(rule).inc()

    def notification(self, outcome: str) -> None:
        """One notification attempt ended `sent`, `failed` (will retry) or `dead`."""
        self.notifications.labels(outcome).inc()

    def set_outbox_pending(self, count: int) -> None:
        self.outbox_pending.set(count)

    # Schedules and sites.

    def schedule_status(self, site_id: int, status: ImplementationStatus) -> None:
        """A schedule entry of `site_id` reached `status` (count each transition once)."""
        self.schedules.count(site_id, status)

    def ensure_site(self, site_id: int) -> None:
        self.schedules.ensure_site(site_id)

    def update_sites(self, snapshots: Iterable[SiteSnapshot]) -> None:
        """A portfolio poll completed: record its sites and pre-create their counters."""
        snapshots = list(snapshots)
        self.sites.update_sites(snapshots)
        for snapshot in snapshots:
            self.schedules.ensure_site(snapshot.site_id)

    def update_availability(self, states: Iterable[Availability], now: float | None = None) -> None:
        self.sites.update_availability(states, now)

    def update_schedules(
        self, outlooks: Iterable[ScheduleOutlook], now: float | None = None
    ) -> None:
        self.sites.update_schedules(outlooks, now)

    def update_planned_outages(
        self, outages: Iterable[NextPlannedOutage], now: float | None = None
    ) -> None:
        self.sites.update_planned_outages(outages, now)

    def update_trajectories(self, forecasts: Iterable[PlanForecast]) -> None:
        self.sites.update_trajectories(forecasts)

    def set_thresholds(
        self, default: tuple[float, float], per_site: Mapping[int, tuple[float, float]]
    ) -> None:
        self.sites.set_thresholds(default, per_site)

    def export_only(self, shown: Callable[[int], bool] | None) -> None:
        """Export the series of the sites `shown` says only (one of several replicas:
        the sites of its buckets); None: every site. Call again when its answers change."""
        self.sites.show_only(shown)
        self.schedules.show_only(shown)
        self.energy.show_only(shown)


def render_metrics(metrics: Metrics) -> bytes:
    """The whole /metrics body: the registry's families, then the cached per-site text."""
    return b"".join(render_metrics_parts(metrics))


def render_metrics_parts(metrics: Metrics) -> list[bytes]:
    """The /metrics body in the pieces it is kept in: the registry's families, then each
    cached group of per-site text as it is (at 10,000 sites ~12 MB in all; joining them
    made two or three more copies per scrape, the monitor's peak memory)."""
    token = fast_render.set(True)
    try:
        head = generate_latest(metrics.registry)
    finally:
        fast_render.reset(token)
    sites = metrics.sites.render_parts()
    return [head, *sites, metrics.schedules.render(), metrics.energy.render()]


class _PartsResponse(Response):
    """A response whose body goes out as the pieces it was given, never joined: the
    server writes each and waits for the client to drain its buffer before the next,
    so a scrape holds no copy of the text beside the collectors' caches."""

    def __init__(self, parts: list[bytes], media_type: str) -> None:
        super().__init__(None, media_type=media_type)
        self.parts = parts
        self.headers["content-length"] = str(sum(len(p) for p in parts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        last = len(self.parts) - 1
        for index, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < last})


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving `render_metrics(metrics)`, to mount at /metrics."""

    async def endpoint(request: Request) -> Response:
        # In a worker thread: at 10,000 sites a changed family takes tens of ms to
        # render, which the event loop (webhooks, /healthz) must not wait for; the
        # thread gives the loop the GIL back every few ms. The collectors hold locks.
        parts = await anyio.to_thread.run_sync(render_metrics_parts, metrics)
        return _PartsResponse(parts, media_type=CONTENT_TYPE)

    return endpoint
