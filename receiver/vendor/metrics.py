"""Metrics of how gently the Cellect client treats the vendor: its retries, its circuit
breaker, its Retry-After pauses, and the requests it held back.

`ClientMetrics` is the client's observer (receiver.vendor.gate.ClientObserver), registered on
the injected registry by `Metrics`. Label children exist at 0 from the start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# receiver.vendor.retry.RETRY_REASONS and receiver.vendor.gate's RequestNotSent reasons
# (spelled out: the metrics do not import the client).
RETRY_REASONS = ("rate_limited", "server_error", "timeout", "connection")
NOT_SENT_REASONS = ("circuit_open", "paused")
OPEN = 2  # receiver.vendor.circuit.CircuitState.OPEN


class _Deadline(Collector):
    """An unlabelled timestamp gauge, absent while unset and once `now()` has reached it."""

    def __init__(self, name: str, documentation: str, now: Callable[[], float]) -> None:
        self.name, self.documentation, self._now = name, documentation, now
        self.value: float | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation)
        if self.value is not None and self.value > self._now():
            family.add_metric((), self.value)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation)


class ClientMetrics:
    """The client's families; its methods are the observer's (receiver.vendor.gate)."""

    def __init__(
        self, registry: CollectorRegistry, now: Callable[[], float], endpoints: tuple[str, ...]
    ) -> None:
        r = registry
        self.retries = Counter(
            "cellect_api_retries",
            "Cellect API calls tried again, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.not_sent = Counter(
            "cellect_api_requests_not_sent",
            "Requests the client held back (circuit open, or paused beyond the call's budget).",
            ["endpoint", "reason"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "cellect_api_circuit_state",
            "The client's circuit breaker: 0 closed, 1 half-open (probing), 2 open.",
            registry=r,
        )
        self.circuit_opens = Counter(
            "cellect_api_circuit_opens",
            "Times the circuit opened (after failures in a row, or a failed probe).",
            registry=r,
        )
        self.paused_seconds = Counter(
            "cellect_api_paused_seconds",
            "Clock seconds by which Retry-After answers paused every request of the client.",
            registry=r,
        )
        self.paused_until = _Deadline(
            "cellect_api_paused_until_timestamp_seconds",
            "Until when a Retry-After pauses every request (absent when not paused).",
            now,
        )
        r.register(self.paused_until)
        for endpoint in endpoints:
            for reason in RETRY_REASONS:
                self.retries.labels(endpoint, reason)
            for reason in NOT_SENT_REASONS:
                self.not_sent.labels(endpoint, reason)

    def api_retry(self, endpoint: str, reason: str) -> None:
        self.retries.labels(endpoint, reason).inc()

    def api_not_sent(self, endpoint: str, reason: str) -> None:
        self.not_sent.labels(endpoint, reason).inc()

    def api_circuit(self, state: int) -> None:
        """The circuit's new state (0 closed, 1 half-open, 2 open)."""
        if state == OPEN:
            self.circuit_opens.inc()
        self.circuit_state.set(state)

    def api_paused(self, until: float, added_s: float) -> None:
        self.paused_until.value = until
        self.paused_seconds.inc(added_s)
