"""The metrics, dashboards and alert rules proven against a real Prometheus.

Set-up (one per module, about a minute and a half in all):
- `cellect-monitor run --emulator --speed 120 --sites 5 --outage-rate 0
  --refresh-token-days 3` as a child process on free loopback ports, in a tmp dir with its
  own SQLite file: the demo exactly as a user starts it (demo trader on), except for one
  setting, CELLECT_SITE_SOC_THRESHOLDS={"3": [0.1, 0.85]}, so that SoCHigh can fire for
  site 3 (the emulated battery never exceeds 95 %, the default high threshold), and a
  refresh token that lives 3 emulated days instead of a year, so that RefreshTokenExpiring
  (under 7 days left) fires; at speed 120 it stays valid for 36 real minutes, far beyond
  the module's run.
- /usr/bin/prometheus (Debian's package) scraping the monitor every second, evaluating
  every second, with a copy of alerts/cellect.rules.yml. The monitor runs on an emulated
  clock 120× real time, Prometheus on real time, so the copy is moved onto the emulated
  clock: every `for:` is divided by 120 and `time()` becomes the emulated now (anchored
  on the emulator's GET /_emulator/clock). So DataStale's "600 s without an update" means
  600 emulated seconds, as the exported timestamps and thresholds are emulated. What
  `for:` does at its real length is pinned by the promtool unit tests
  (tests/test_alert_rules.py).
  Without Prometheus the module is skipped, or fails when CELLECT_TEST_REQUIRE_PEERS is
  set (CI installs the package).

Scenario, through the emulator's control and partner APIs over HTTP:
- warm-up: the demo trader plans every site; Prometheus sees every site's state;
- the test then takes over trading (revokes the trader's refresh token), so that no
  re-plan of the trader undoes the schedules posted below;
- failures: site 4's box goes offline and entries are posted for it (each fails at its
  start: ImplementationFailed; the site stops reporting: DataStale); site 2 gets an
  unplanned inverter outage (SiteUnavailable, critical); site 5 a planned maintenance
  and its schedule deleted (SiteUnavailable, warning; ScheduleHorizonShort); site 1 is
  discharged (SoCLow), site 3 charged (SoCHigh);
- a planned maintenance of site 2 is announced two emulated days ahead (for the
  upcoming-outage panels);
- while all of them fire, every PromQL expression of every dashboard panel must return
  data (the site dashboard on site 2, the one in an outage), but for the one column the
  emulator cannot fill (the end of a planned event, published only once it has ended);
- recovery resolves every one of those alerts;
- a plan posted for a site whose box is offline stays InProgress into its last five
  minutes before start: InProgressStuck fires; the box back online transfers the waiting
  entries and resolves it;
- a failing token endpoint (with the access tokens expired) fires ApiDown, not
  AuthFailing (a 5xx refuses nothing), and clearing the fault resolves it;
- no webhook for a while (the trader is gone) fires WebhookSilence, a post resolves it;
- the 3-day refresh token fires RefreshTokenExpiring from the start. Only its firing is
  asserted: the rule resolves only with a new token and a restart of the monitor.
Every rule but AuthFailing and MonitorDown is thus seen firing, and all but
RefreshTokenExpiring resolving (refused credentials: test_engines_agree.py; MonitorDown:
the promtool tests). The tests run in file order and share the scenario's state: each
phase starts from what the one before left.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.timestamps import parse_timestamp
from tests.support.panels import panel_queries, panels_without_queries
from tests.support.prometheus import (
    DASHBOARDS,
    RULES,
    Child,
    Emulator,
    PromApi,
    child_env,
    free_port,
    require_prometheus,
    scale_rules,
    start_monitor,
    start_prometheus,
    wait_for,
)

pytestmark = pytest.mark.prometheus
SPEED = 120
SITES = (1, 2, 3, 4, 5)
PHASE_S = 60.0  # real seconds any one alert may take to fire or to resolve
REFRESH_TOKEN_DAYS = 3  # under RefreshTokenExpiring's 7 days; 36 real minutes at SPEED
STUCK_SITE = 2  # InProgressStuck's site: its outage is over by then, nothing else pending


@dataclass
class Demo:
    monitor: Child
    prometheus: Child
    emulator: Emulator
    api: PromApi
    fired: dict[str, dict[str, str]] = field(default_factory=dict)

    @contextmanager
    def explained(self) -> Iterator[None]:
        """Add the children's last log lines to a failure (their tmp dir is removed)."""
        try:
            yield
        except AssertionError as exc:
            logs = self.monitor.tail() + "\n" + self.prometheus.tail(15)
            raise AssertionError(f"{exc}\n{logs}") from None


def _start_monitor(tmp: Path) -> tuple[Child, str, Emulator]:
    emulator_port = free_port()
    args = ["--emulator", "--emulator-port", str(emulator_port), "--speed", str(SPEED)]
    args += ["--sites", str(len(SITES)), "--outage-rate", "0"]
    args += ["--refresh-token-days", str(REFRESH_TOKEN_DAYS)]
    args += ["--database-url", f"sqlite:///{tmp}/monitor.db"]
    env = child_env(CELLECT_SITE_SOC_THRESHOLDS='{"3": [0.1, 0.85]}')
    monitor, target = start_monitor(tmp, args, env)
    return monitor, target, Emulator(f"http://127.0.0.1:{emulator_port}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo monitor and a Prometheus scraping it, warmed up: every site seen, planned."""
    require_prometheus()
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    monitor, target, emulator = _start_monitor(tmp)
    prometheus: Child | None = None
    try:
        rules = scale_rules(RULES.read_text(), emulator.clock())
        prometheus, api = start_prometheus(tmp, target, rules)
        demo = Demo(monitor, prometheus, emulator, api)
        try:
            with demo.explained():
                wait_for(lambda: _warm(api), within=PHASE_S, what="every site's state and plan")
            yield demo
        finally:
            api.close()
            emulator.close()
    finally:
        for child in (prometheus, monitor):
            if child is not None:
                child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _warm(api: PromApi) -> bool:
    soc = api.query("cellect_site_state_of_charge_ratio")
    planned = api.query("cellect_site_schedule_horizon_seconds > 6 * 3600")
    return len(soc) == len(planned) == len(SITES)


# The alerts the failures must fire, with the labels each must carry.
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    "failed": ("ImplementationFailed", {"site_id": "4", "severity": "critical"}),
    "stale": ("DataStale", {"site_id": "4", "severity": "warning"}),
    "unplanned": (
        "SiteUnavailable",
        {
            "site_id": "2",
            "severity": "critical",
            "downtime": "unplanned",
            "reason": "Outage",
            "source": "Inverter",
        },
    ),
    "planned": (
        "SiteUnavailable",
        {
            "site_id": "5",
            "severity": "warning",
            "downtime": "planned",
            "reason": "Maintenance",
            "source": "Cellect",
        },
    ),
    "horizon": ("ScheduleHorizonShort", {"site_id": "5", "severity": "warning"}),
    "soc_low": ("SoCLow", {"site_id": "1", "severity": "warning"}),
    "soc_high": ("SoCHigh", {"site_id": "3", "severity": "warning"}),
}


@pytest.fixture(scope="module")
def taken_over(demo: Demo) -> Demo:
    """The demo after the test took over trading: only the test posts schedules now."""
    demo.emulator.take_over_trading()
    return demo


@pytest.fixture(scope="module")
def failing(taken_over: Demo) -> Demo:
    """Every failure of the scenario driven, and each expected alert seen firing."""
    demo = taken_over
    api = demo.api
    already = {key for key, (name, labels) in EXPECTED.items() if api.firing(name, **labels)}
    assert not already, f"firing before any failure was driven: {already}"
    with demo.explained():
        _drive_failures(demo)
        _announce_maintenance(demo)
    return demo


def _drive_failures(demo: Demo) -> None:
    emulator, api = demo.emulator, demo.api
    emulator.box(4, online=False)
    emulator.post_schedule(4, 50.0, hours=3, entries=12)  # one fails every 15 min
    emulator.outage(2, type="Unplanned", reason=4, source=4)
    emulator.outage(5, type="Planned", reason=3, source=1)
    emulator.delete_schedule(5)
    emulator.post_schedule(1, 120.0, hours=2)  # full discharge
    emulator.post_schedule(3, -100.0, hours=2)  # full charge
    for key, (name, labels) in EXPECTED.items():
        demo.fired[key] = api.wait_firing(name, within=PHASE_S, **labels)


def _announce_maintenance(demo: Demo) -> None:
    """A planned maintenance of site 2 two emulated days ahead (long after the module),
    for the dashboards' upcoming-outage panels; waits until Prometheus has it."""
    demo.emulator.outage(2, type="Planned", reason=3, source=1, starts_in_s=2 * 86400)
    ahead = 'cellect_site_next_planned_outage_start_timestamp_seconds{site_id="2"}'
    wait_for(lambda: demo.api.query(ahead), within=PHASE_S, what="the planned outage ahead")


# Panel queries with no data in this scenario although the dashboards are right: the
# emulator publishes an event's end only once it has ended, so no planned end is known.
NO_DATA_HERE = {
    "cellect-portfolio: Upcoming planned outages [C]",
    # Delivered against planned exists once an entry has run and been computed (minutes
    # after its end), which this scenario's failing entries never are; the panels' series
    # are pinned by tests/service/test_delivery_tracking.py and the metrics tests.
    "cellect-portfolio: Worst tracking [A]",
    "cellect-site: Plan vs delivered [A]",
    "cellect-site: Plan vs delivered [B]",
    "cellect-site: Plan vs delivered [C]",
}
# The replicas' panels read the lease and identity series (docs/metrics.md, "Several
# replicas"): empty while the monitor exports none of them, and held to data once it does.
REPLICA_PANELS = {"Replicas", "Leases held by replica", "Lease changes"}


def test_every_dashboard_panel_has_a_query() -> None:
    """Every dashboard panel (rows aside) carries a PromQL target."""
    assert panels_without_queries(DASHBOARDS) == []


def test_every_dashboard_panel_returns_data(failing: Demo) -> None:
    """Each PromQL expression of each dashboard panel returns data through Prometheus."""
    queries = panel_queries(DASHBOARDS, {"site": "2"})
    assert len(queries) > 30
    queries = [q for q in queries if q.id not in NO_DATA_HERE]
    if not failing.api.query("cellect_replica_info"):
        queries = [q for q in queries if q.panel not in REPLICA_PANELS]
    empty = [q.id + ": " + q.expr for q in queries if not failing.api.query(q.expr)]
    assert empty == [], "\n".join(empty)


@pytest.mark.parametrize("failure", sorted(EXPECTED))
def test_driven_failure_fires_its_rule(failing: Demo, failure: str) -> None:
    """Each driven failure fired its rule with the site, severity and event labels, and
    site alerts name the site."""
    fired, (name, labels) = failing.fired[failure], EXPECTED[failure]
    assert fired["alertname"] == name
    assert {k: fired.get(k) for k in labels} == labels
    assert fired["site_name"]


def test_recovery_resolves_every_fired_rule(failing: Demo) -> None:
    """Back online, outages over, plans and charge restored: every fired alert resolves."""
    emulator, api = failing.emulator, failing.api
    emulator.box(4, online=True)
    emulator.end_outage(2)
    emulator.end_outage(5)
    emulator.post_schedule(5, 1.0, hours=8)
    emulator.post_schedule(1, -100.0, hours=1)
    emulator.post_schedule(3, 120.0, hours=1)
    with failing.explained():
        for name, labels in EXPECTED.values():
            api.wait_resolved(name, within=PHASE_S, **labels)


def test_plan_for_an_offline_box_fires_in_progress_stuck(taken_over: Demo) -> None:
    """Entries posted while a site's box is offline are still InProgress in their last five
    minutes before start: InProgressStuck fires for the site and stays firing as they fail
    one by one; the box back online transfers the waiting entries (Implemented) and the
    alert resolves while the plan is still ahead, so by the transfer, not by running out.

    One entry is within five minutes of its start for 5 emulated minutes, 2.5 real seconds
    here, and then fails: too short for a scrape, an evaluation and the scaled `for:` (1 s)
    to be seen reliably. So the plan is 24 back-to-back entries of 5 minutes: as each one
    fails at its start the next is within five minutes of its own, and the condition holds
    for the plan's two emulated hours (a minute real) unless the box comes back first.
    """
    emulator, api, site = taken_over.emulator, taken_over.api, str(STUCK_SITE)
    failures = f'cellect_schedule_implementation_failures_total{{site_id="{site}"}}'
    failed_before = api.value(failures) or 0.0
    emulator.box(STUCK_SITE, online=False)
    try:
        start = emulator.post_schedule(STUCK_SITE, 1.0, hours=2, entries=24)
        last_start = start + timedelta(minutes=115)
        with taken_over.explained():
            alert = api.wait_firing("InProgressStuck", within=PHASE_S, site_id=site)
            assert alert["severity"] == "warning"
            # Past the first entry's start it has failed; the next ones keep it firing.
            wait_for(lambda: emulator.now() > start + timedelta(minutes=6), within=10)
            wait_for(lambda: (api.value(failures) or 0.0) > failed_before, within=10)
            assert api.firing("InProgressStuck", site_id=site)
    finally:
        emulator.box(STUCK_SITE, online=True)
    with taken_over.explained():
        api.wait_resolved("InProgressStuck", within=PHASE_S, site_id=site)
    assert emulator.now() < last_start, "resolved only as the plan ran out"
    _assert_transferred(taken_over, start, last_start)


def _assert_transferred(demo: Demo, first_start: datetime, last_start: datetime) -> None:
    """The stuck gauge is 0 and the posted entries still ahead went to the box on reconnect.

    Only the test's own 5-minute entries count: the window also holds the demo trader's
    earlier 15-minute plan for the site, which the test's post overwrote (status 5).
    """
    emulator, site = demo.emulator, str(STUCK_SITE)
    stuck = f'cellect_schedule_entries_in_progress_near_start{{site_id="{site}"}}'
    assert demo.api.value(stuck) == 0
    now = emulator.now()
    entries = emulator.ex_ante(STUCK_SITE, now, last_start + timedelta(minutes=5))
    ahead = [
        ImplementationStatus(int(entry["implementationStatus"]))
        for entry in entries
        if _start_of(entry) > now
        and _start_of(entry) >= first_start
        and _end_of(entry) - _start_of(entry) == timedelta(minutes=5)
    ]
    assert ahead, "no entry left ahead"
    assert set(ahead) == {ImplementationStatus.IMPLEMENTED}, ahead


def _start_of(entry: dict[str, Any]) -> datetime:
    start = parse_timestamp(entry["startDate"])
    assert start is not None, entry
    return start


def _end_of(entry: dict[str, Any]) -> datetime:
    end = parse_timestamp(entry["endDate"])
    assert end is not None, entry
    return end


def test_failing_token_endpoint_fires_api_down_not_auth_failing(demo: Demo) -> None:
    """Expired access tokens and a token endpoint answering 5xx fire ApiDown (the service
    fails, the credentials are not refused); a working endpoint resolves it."""
    emulator, api = demo.emulator, demo.api
    fault = {"endpoint": "access-token", "error_rate": 1.0, "expire_tokens": True}
    emulator.control("POST", "/faults", fault)
    try:
        alert = api.wait_firing("ApiDown", within=PHASE_S)
        assert alert["severity"] == "critical"
        assert not api.firing("AuthFailing")
    finally:
        emulator.control("DELETE", "/faults")
    api.wait_resolved("ApiDown", within=PHASE_S)


def test_webhook_silence_fires_and_a_delivery_resolves_it(taken_over: Demo) -> None:
    """With plans ahead but no webhook accepted for the window, WebhookSilence fires; the
    webhooks of a new post resolve it."""
    emulator, api = taken_over.emulator, taken_over.api
    alert = api.wait_firing("WebhookSilence", within=PHASE_S)
    assert alert["severity"] == "warning"
    emulator.post_schedule(2, 1.0, hours=1)
    api.wait_resolved("WebhookSilence", within=PHASE_S)


def test_a_short_lived_refresh_token_fires_refresh_token_expiring(demo: Demo) -> None:
    """A refresh token issued for 3 days (`--refresh-token-days 3`) fires
    RefreshTokenExpiring, its expiry exported as an emulated timestamp 3 days after start.

    Only firing is asserted: the rule resolves only once a new refresh token is configured
    and the monitor restarted, which the demo does not do.
    """
    emulator, api = demo.emulator, demo.api
    alert = api.wait_firing("RefreshTokenExpiring", within=PHASE_S)
    assert alert["severity"] == "warning"
    expiry = api.value("cellect_refresh_token_expiry_timestamp_seconds")
    assert expiry is not None
    left_s = expiry - emulator.now().timestamp()
    # Issued at start; the module has run for minutes real, a few emulated hours.
    assert REFRESH_TOKEN_DAYS * 86400 - 12 * 3600 < left_s < REFRESH_TOKEN_DAYS * 86400
