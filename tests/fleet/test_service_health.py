"""The service's health as both engines see it: answers, failures and credential verdicts
of the vendor API, pollers, webhooks — in the ServiceView and in the exported series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from receiver.cellect.clock import Clock
from receiver.fleet.service_health import ServiceHealth, answered
from receiver.metrics.registry import Metrics

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FAILING = "cellect_api_failing_since_timestamp_seconds"
REFUSED = "cellect_api_credentials_refused"


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(START)


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(CollectorRegistry(), now=clock.timestamp)


@pytest.fixture
def health(metrics: Metrics, clock: Clock) -> ServiceHealth:
    service = ServiceHealth(metrics=metrics, clock=clock)
    service.poller_started("portfolio", 60.0)
    return service


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        *[("200", True), ("401", True), ("429", True), ("404", True)],
        *[("500", False), ("503", False), ("timeout", False), ("error", False)],
    ],
)
def test_any_status_below_500_is_an_answer(code: str, answer: bool) -> None:
    """A 429 (throttling) and a 401 (refusal) are the API up; 5xx and no reply are not."""
    assert answered(code) is answer


def test_an_endpoint_fails_from_its_first_unanswered_attempt_until_it_answers(
    health: ServiceHealth, metrics: Metrics, clock: Clock
) -> None:
    """Failing-since is per endpoint, from the first failure; another endpoint's refusal
    (401) does not clear it, its own answer (a 429 too) does."""
    health.api_request("access_token", "timeout", 1.0)
    failed_at = clock.now()
    clock.advance(60)
    health.api_request("access_token", "503", 0.1)
    health.api_request("portfolio_overview", "401", 0.1)
    assert health.view().api_failing_since == failed_at
    assert sample(metrics, FAILING, endpoint="access_token") == failed_at.timestamp()
    assert sample(metrics, FAILING, endpoint="portfolio_overview") is None
    health.api_request("access_token", "429", 0.1)
    assert health.view().api_failing_since is None
    assert sample(metrics, FAILING, endpoint="access_token") is None


def test_a_success_anywhere_ends_every_failure(
    health: ServiceHealth, metrics: Metrics, clock: Clock
) -> None:
    """A 2xx shows the API and the credentials work: endpoints not asked since (ex_post
    polls every quarter of an hour) stop counting as failing."""
    health.api_request("ex_post", "503", 0.1)
    health.api_request("ex_ante", "timeout", 0.1)
    clock.advance(60)
    health.api_request("portfolio_overview", "200", 0.1)
    assert health.view().api_failing_since is None
    assert sample(metrics, FAILING, endpoint="ex_post") is None
    assert sample(metrics, FAILING, endpoint="ex_ante") is None


def test_a_refused_refresh_token_is_refused_until_a_token_is_issued(
    health: ServiceHealth, metrics: Metrics, clock: Clock
) -> None:
    """Token service 401/400 refuse the credentials; its 5xx and timeouts are no verdict;
    a 200 ends the refusal."""
    assert sample(metrics, REFUSED) == 0
    health.api_request("access_token", "401", 0.1)
    refused_at = clock.now()
    clock.advance(60)
    for code in ("503", "timeout", "400"):
        health.api_request("access_token", code, 0.1)
    assert health.view().auth_refused_since == refused_at
    assert sample(metrics, REFUSED) == 1
    health.api_request("access_token", "200", 0.1)
    assert not health.view().auth_failing
    assert sample(metrics, REFUSED) == 0


def test_token_service_failures_are_not_refusals(health: ServiceHealth) -> None:
    """A token service that times out or answers 5xx is the network, not the credentials."""
    for code in ("timeout", "500", "error"):
        health.api_request("access_token", code, 0.1)
    assert not health.view().auth_failing


def test_a_401_is_a_refusal_only_for_a_token_just_issued(health: ServiceHealth) -> None:
    """A 401 for an old token is the vendor forgetting it (renewed, then 200: no refusal);
    a 401 to the token just issued is a refusal, until a resource answers 2xx."""
    health.api_request("access_token", "200", 0.1)
    health.api_request("ex_ante", "200", 0.1)
    health.api_request("ex_ante", "401", 0.1)  # the old token, forgotten early
    assert not health.view().auth_failing
    health.api_request("access_token", "200", 0.1)
    health.api_request("ex_ante", "401", 0.1)  # the new one refused
    assert health.view().auth_failing
    health.api_request("access_token", "200", 0.1)  # issued again: still refused by the API
    assert health.view().auth_failing
    health.api_request("ex_ante", "200", 0.1)
    assert not health.view().auth_failing


def test_a_403_is_not_a_refusal(health: ServiceHealth) -> None:
    """The guide's only 403 is 30004, a site that is not ours: not the credentials."""
    health.api_request("access_token", "200", 0.1)
    health.api_request("availability", "403", 0.1)
    assert not health.view().auth_failing


def test_without_pollers_no_poll_or_credential_series_exist(metrics: Metrics, clock: Clock) -> None:
    """In webhooks-only mode (no poller started) the monitor exports its start, and no
    poll interval, poll success, or credential verdict."""
    service = ServiceHealth(metrics=metrics, clock=clock)
    assert not service.view().polling
    assert sample(metrics, "cellect_monitor_start_time_seconds") == START.timestamp()
    assert sample(metrics, REFUSED) is None
    assert sample(metrics, "cellect_poll_interval_seconds", poller="portfolio") is None


def test_a_poller_exports_its_interval_then_its_first_success(
    health: ServiceHealth, metrics: Metrics, clock: Clock
) -> None:
    """A started poller has its interval at once and a last success only after one."""
    name = "cellect_poll_last_success_timestamp_seconds"
    assert sample(metrics, "cellect_poll_interval_seconds", poller="portfolio") == 60
    assert sample(metrics, name, poller="portfolio") is None
    clock.advance(5)
    health.poll_succeeded("portfolio", clock.now())
    assert sample(metrics, name, poller="portfolio") == clock.timestamp()
    [poller] = health.view().pollers
    assert poller.last_success == clock.now()


def test_only_accepted_webhooks_end_a_silence(
    health: ServiceHealth, metrics: Metrics, clock: Clock
) -> None:
    """A refused delivery is no sign of Cellect reaching us; an accepted one is."""
    name = "cellect_webhook_last_accepted_timestamp_seconds"
    health.webhook_answered("unauthorized", 0.01)
    assert health.view().last_webhook_at is None
    assert sample(metrics, name) is None
    clock.advance(timedelta(minutes=3).total_seconds())
    health.webhook_answered("accepted", 0.01)
    assert health.view().last_webhook_at == clock.now()
    assert sample(metrics, name) == clock.timestamp()
