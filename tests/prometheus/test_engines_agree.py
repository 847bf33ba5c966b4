"""One truth, two engines: the same scenarios fire the same alerts in a real Prometheus with
the shipped rules and in the monitor's built-in engine.

Set-up (one per module): `cellect-monitor run --emulator --speed 120 --sites 6
--no-demo-trader --outage-rate 0` as a child process, with CELLECT_SITE_SOC_THRESHOLDS
putting site 4 below its own SoCLow threshold, and Prometheus scraping it every second with
alerts/cellect.rules.yml moved onto the emulated clock (harness.scale_rules: `for:` / 120,
time() = the emulated now; the thresholds come from the monitor's gauges, unscaled). What
fires is compared as (alertname, severity, site_id): Prometheus' /api/v1/alerts against
the built-in engine's firing alerts in the monitor's SQLite database. Each checkpoint
polls (bounded in real time) until the two sets are equal and hold what the scenario
must fire and nothing it must not; emulated time only runs, nothing sleeps to drive it.

Scenario, in file order (each phase starts from what the one before left):
- from a fresh start with the monitor's webhook subscription disabled: site 1's box goes
  offline under a 2-hour plan of 5-minute entries (ImplementationFailed, InProgressStuck,
  DataStale, ScheduleHorizonShort), site 2 an unplanned outage (SiteUnavailable critical),
  site 3 a planned one (SiteUnavailable warning), site 4 under its threshold (SoCLow),
  site 5 a 2-hour plan (ScheduleHorizonShort), site 6 a 24-hour plan (nothing). Sites 2-4
  are scheduled by nobody: no ScheduleHorizonShort. No WebhookSilence in the first hour;
- an hour after the start without a webhook, WebhookSilence fires in both; a delivery
  resolves it;
- recovery resolves what it should, in both;
- the API answering 5xx fires ApiDown (not AuthFailing); only 429s make the data stale
  without ApiDown; a token endpoint that times out fires ApiDown, not AuthFailing; a
  refused refresh token fires AuthFailing, not ApiDown.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.prometheus import (
    RULES,
    BuiltinAlerts,
    Child,
    Emulator,
    Firing,
    PromApi,
    child_env,
    exported,
    free_port,
    prometheus_firing,
    require_prometheus,
    scale_rules,
    start_monitor,
    start_prometheus,
    wait_for,
)

pytestmark = pytest.mark.prometheus
SPEED = 120
SITES = (1, 2, 3, 4, 5, 6)
PHASE_S = 60.0  # real seconds a checkpoint may take to agree
# The monitor's settings for the run: site 4 sits below its own SoCLow threshold; short
# HTTP timeouts and two attempts, so that a token endpoint that hangs fails fast.
ENV = {
    "CELLECT_SITE_SOC_THRESHOLDS": json.dumps({"4": [0.95, 0.99]}),
    "CELLECT_HTTP_TIMEOUT_S": "0.5",
    "CELLECT_RETRY_ATTEMPTS": "2",
    "CELLECT_ALERT_MIN_GAP_S": "0.2",  # judge often: the clock runs 120x
}


def alert(name: str, severity: str, site: int | None = None) -> tuple[str, str, str | None]:
    return (name, severity, None if site is None else str(site))


SITE_PROBLEMS = frozenset(
    {
        alert("ImplementationFailed", "critical", 1),
        alert("InProgressStuck", "warning", 1),
        alert("DataStale", "warning", 1),
        alert("ScheduleHorizonShort", "warning", 1),
        alert("SiteUnavailable", "critical", 2),
        alert("SiteUnavailable", "warning", 3),
        alert("SoCLow", "warning", 4),
        alert("ScheduleHorizonShort", "warning", 5),
    }
)
UNSCHEDULED = frozenset(alert("ScheduleHorizonShort", "warning", s) for s in (2, 3, 4, 6))
SILENCE = alert("WebhookSilence", "warning")
API_DOWN = alert("ApiDown", "critical")
AUTH_FAILING = alert("AuthFailing", "critical")
ALL_STALE = frozenset(alert("DataStale", "warning", s) for s in SITES)


@dataclass
class World:
    monitor: Child
    prometheus: Child
    emulator: Emulator
    api: PromApi
    builtin: BuiltinAlerts
    started: datetime

    @contextmanager
    def explained(self) -> Iterator[None]:
        """Add the children's last log lines to a failure (their tmp dir is removed)."""
        try:
            yield
        except AssertionError as exc:
            logs = self.monitor.tail() + "\n" + self.prometheus.tail(15)
            raise AssertionError(f"{exc}\n{logs}") from None

    def at_least(self, minutes: float) -> None:
        """Wait (bounded) until the emulated clock is `minutes` past the monitor's start."""
        moment = self.started + timedelta(minutes=minutes)
        wait_for(lambda: self.emulator.now() >= moment, within=minutes * 60 / SPEED + 30)

    def agree(
        self,
        *,
        required: frozenset[tuple[str, str, str | None]] = frozenset(),
        forbidden: frozenset[tuple[str, str, str | None]] = frozenset(),
        exactly: Firing | None = None,
        until_minute: float | None = None,
    ) -> Firing:
        """Poll until both engines fire the same set, holding `required` (or `exactly`
        that set) and nothing `forbidden`; returns it. With `until_minute`, agreement
        must come before the emulated clock reaches that minute after the start."""
        seen: list[tuple[Firing | None, Firing]] = []

        def probe() -> Firing | None:
            mine, theirs = self.builtin.firing(), prometheus_firing(self.api)
            seen.append((mine, theirs))
            if until_minute is not None:
                late = self.emulator.now() > self.started + timedelta(minutes=until_minute)
                assert not late, f"no agreement by emulated minute {until_minute}"
            if mine is None or mine != theirs:
                return None
            if exactly is not None and mine != exactly:
                return None
            return mine if required <= mine and not mine & forbidden else None

        with self.explained():
            try:
                return wait_for(probe, within=PHASE_S, what="both engines to agree")
            except AssertionError as exc:
                built_in, prometheus = seen[-1] if seen else (None, frozenset())
                raise AssertionError(
                    f"{exc}\nbuilt-in: {sorted(built_in or [], key=str)}"
                    f"\nprometheus: {sorted(prometheus, key=str)}"
                ) from None


def _start(tmp: Path) -> tuple[Child, str, Emulator]:
    emulator_port = free_port()
    args = ["--emulator", "--emulator-port", str(emulator_port), "--speed", str(SPEED)]
    args += ["--sites", str(len(SITES)), "--outage-rate", "0", "--no-demo-trader"]
    args += ["--database-url", f"sqlite:///{tmp}/monitor.db"]
    monitor, target = start_monitor(tmp, args, child_env(**ENV))
    return monitor, target, Emulator(f"http://127.0.0.1:{emulator_port}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The monitor, its emulator and a Prometheus, from a fresh start; webhooks disabled."""
    require_prometheus()
    tmp = tmp_path_factory.mktemp("engines-agree")
    monitor, target, emulator = _start(tmp)
    prometheus: Child | None = None
    builtin = BuiltinAlerts(tmp / "monitor.db")
    try:
        _webhooks(emulator, enabled=False)
        start = exported(target, "cellect_monitor_start_time_seconds")
        assert start is not None
        started = datetime.fromtimestamp(start, UTC)
        clock = emulator.clock()
        prometheus, api = start_prometheus(tmp, target, scale_rules(RULES.read_text(), clock))
        try:
            yield World(monitor, prometheus, emulator, api, builtin, started)
        finally:
            api.close()
    finally:
        for child in (prometheus, monitor):
            if child is not None:
                child.stop()
        emulator.close()
        builtin.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _webhooks(emulator: Emulator, *, enabled: bool) -> None:
    """Enable or disable the monitor's webhook subscription (the only one). The demo
    subscribes just after it starts listening, so wait (bounded) for the subscription."""
    [subscription] = wait_for(
        lambda: emulator.control("GET", "/webhooks"), within=30, what="the demo's subscription"
    )
    emulator.control("PUT", f"/webhooks/{subscription['id']}", {"enabled": enabled})


@pytest.fixture(scope="module")
def site_problems(world: World) -> World:
    """Every site scenario driven, a minute or so after the start."""
    emulator = world.emulator
    emulator.box(1, online=False)
    emulator.post_schedule(1, 1.0, hours=2, entries=24)
    emulator.outage(2, type="Unplanned", reason=4, source=4)
    emulator.outage(3, type="Planned", reason=3, source=1)
    emulator.post_schedule(5, 1.0, hours=2)
    emulator.post_schedule(6, 1.0, hours=24, entries=4)
    return world


def test_site_problems_fire_alike_and_no_silence_in_the_first_hour(site_problems: World) -> None:
    """Both engines fire the site alerts of the scenario and nothing else: no
    ScheduleHorizonShort for sites nobody schedules, no WebhookSilence within the hour
    after a fresh start (the old rule fired after ~16 minutes)."""
    world = site_problems
    world.at_least(25)
    world.agree(exactly=SITE_PROBLEMS, until_minute=55)


def test_webhook_silence_fires_an_hour_after_the_start_and_a_delivery_ends_it(
    site_problems: World,
) -> None:
    """An hour without an accepted webhook since the start fires WebhookSilence in both;
    the webhooks of a new post resolve it in both."""
    world = site_problems
    world.at_least(60)
    world.agree(exactly=SITE_PROBLEMS | {SILENCE})
    _webhooks(world.emulator, enabled=True)
    world.emulator.post_schedule(6, 1.0, hours=1)
    world.agree(required=SITE_PROBLEMS, forbidden=frozenset({SILENCE}))


def test_recovery_resolves_alike(site_problems: World) -> None:
    """The box back online and the outages over: both keep only what still holds (the
    failure hold, SoCLow by threshold, the short plans)."""
    world = site_problems
    world.emulator.box(1, online=True)
    world.emulator.end_outage(2)
    world.emulator.end_outage(3)
    world.agree(
        exactly=frozenset(
            {
                alert("ImplementationFailed", "critical", 1),
                alert("SoCLow", "warning", 4),
                alert("ScheduleHorizonShort", "warning", 1),
                alert("ScheduleHorizonShort", "warning", 5),
            }
        )
    )


@contextmanager
def fault(world: World, **rule: object) -> Iterator[float]:
    """An emulator fault for the block (yields the emulated minute it began); cleared after."""
    world.emulator.control("POST", "/faults", rule)
    began = (world.emulator.now() - world.started).total_seconds() / 60
    try:
        yield began
    finally:
        world.emulator.control("DELETE", "/faults")


def test_an_api_answering_5xx_is_api_down_not_auth_failing(site_problems: World) -> None:
    """Every request answered 5xx fires ApiDown in both (AuthFailing's hold passes
    without it); answers again resolve it."""
    world = site_problems
    with fault(world, endpoint="*", error_rate=1.0) as began:
        world.at_least(began + 8)
        world.agree(required=frozenset({API_DOWN}), forbidden=frozenset({AUTH_FAILING}))
    world.agree(forbidden=frozenset({API_DOWN}) | ALL_STALE)


def test_only_429s_make_data_stale_but_not_api_down(site_problems: World) -> None:
    """A vendor throttling every request (429) is up: the data goes stale in both, ApiDown
    fires in neither."""
    world = site_problems
    with fault(world, endpoint="*", rate_limit_rate=1.0, retry_after_s=1) as began:
        world.at_least(began + 12)
        world.agree(required=ALL_STALE, forbidden=frozenset({API_DOWN, AUTH_FAILING}))
    world.agree(forbidden=ALL_STALE)


def test_a_token_endpoint_timing_out_is_api_down_not_auth_failing(site_problems: World) -> None:
    """Expired access tokens and a token endpoint that does not answer in time fire
    ApiDown in both, and AuthFailing in neither: the network, not refused credentials."""
    world = site_problems
    hang = {"endpoint": "access-token", "latency_s": 2.0, "expire_tokens": True}
    with fault(world, **hang) as began:
        world.at_least(began + 8)
        world.agree(required=frozenset({API_DOWN}), forbidden=frozenset({AUTH_FAILING}))
    world.agree(forbidden=frozenset({API_DOWN}) | ALL_STALE)


def test_a_refused_refresh_token_is_auth_failing_not_api_down(site_problems: World) -> None:
    """A revoked refresh token (the access tokens expired) fires AuthFailing in both, and
    ApiDown in neither: the API answers, it refuses."""
    world = site_problems
    for token in world.emulator.control("GET", "/refresh-tokens"):
        world.emulator.control("DELETE", f"/refresh-tokens/{token['identifier']}")
    with fault(world, expire_tokens=True) as began:
        world.at_least(began + 8)
        world.agree(required=frozenset({AUTH_FAILING}), forbidden=frozenset({API_DOWN}))
