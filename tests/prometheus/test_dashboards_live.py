"""Every dashboard panel's PromQL, evaluated by a real Prometheus scraping a real monitor,
tells the truth at the two moments a dashboard is most tempted to lie.

Set-up (one per module, about half a minute): a standalone emulator of the Cellect cloud
(`python -m receiver emulator`, 3 sites, at speed 1: its emulated clock is real time, as
the Cellect cloud's is), a monitor pointed at it as in production (`python -m receiver
run` with CELLECT_API_URL and a refresh token; 1–2 s poll intervals, so that states
change within seconds), and /usr/bin/prometheus scraping the monitor every second. The
monitor's exported timestamps and Prometheus' `time()` are then the same clock, as in
production, so ages mean what they say.

- A fresh start: the emulator's token endpoint fails from the beginning, so the monitor
  has no access token and its portfolio poll has never succeeded. No panel may show a huge
  or negative age (no 1970 timestamp turned into 56 years), the site counts are 0 rather
  than empty, and no panel shows NaN.
- A stale site: the token endpoint works again, every site reports; then site 1's box is
  cut off (`POST /_emulator/sites/1/box {"online": false}`), so Cellect leaves it out of
  its portfolio. Its SoC, power and energy panels show nothing, its status is Stale,
  the stale-sites stat counts it, the lowest-SoC gauge and the map show it as stale
  instead of hiding it or showing it live. A planned outage announced for site 2 two
  hours ahead appears with its start, end and time to go.

Every wait is a bounded poll of something Prometheus shows; nothing sleeps to move time.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.support.panels import PanelQuery, panel_queries, queries_of
from tests.support.prometheus import (
    DASHBOARDS,
    PROMETHEUS,
    RULES,
    Child,
    Emulator,
    PromApi,
    child_env,
    free_port,
    prometheus_config,
    wait_for,
)

pytestmark = pytest.mark.prometheus
SITES = 3
STALE_SITE = "1"
PLANNED_SITE = 2
PLANNED_IN_S = 7200
PLANNED_FOR_S = 3600
REFRESH_TOKEN = "dashboards-live-refresh-token"
WITHIN_S = 60.0  # real seconds any one state may take to show in Prometheus
# The largest honest age or time-to-go on these dashboards: the configured refresh token
# (30 days here); a 1970 timestamp would be ~56 years.
LARGEST_S = 366 * 86400.0
# Prometheus' time() and the monitor's clock are one machine's: ages are >= 0 up to the
# rounding of the evaluation timestamp.
SMALLEST_S = -1.0
Sample = tuple[dict[str, str], float]


@dataclass(frozen=True)
class Snapshot:
    """Every panel query's instant result at one moment."""

    results: dict[PanelQuery, list[Sample]]

    def of(self, dashboard: str, panel: str, ref: str = "A") -> list[Sample]:
        (query,) = [q for q in queries_of(list(self.results), dashboard, panel) if q.ref_id == ref]
        return self.results[query]

    def values(self, dashboard: str, panel: str, ref: str = "A") -> list[float]:
        return [value for _, value in self.of(dashboard, panel, ref)]

    def by_site(self, dashboard: str, panel: str, ref: str = "A") -> dict[str, float]:
        return {labels["site_id"]: value for labels, value in self.of(dashboard, panel, ref)}


@dataclass
class Stack:
    emulator: Emulator
    api: PromApi
    monitor: Child
    prometheus: Child

    def snapshot(self) -> Snapshot:
        queries = panel_queries(DASHBOARDS, {"site": STALE_SITE})
        return Snapshot({q: _samples(self.api, q.expr) for q in queries})

    def explain(self, exc: AssertionError) -> AssertionError:
        logs = self.monitor.tail() + "\n" + self.prometheus.tail(15)
        return AssertionError(f"{exc}\n{logs}")


def _samples(api: PromApi, expr: str) -> list[Sample]:
    return [(r["metric"], float(r["value"][1])) for r in api.query(expr)]


def _require_prometheus() -> None:
    if os.access(PROMETHEUS, os.X_OK):
        return
    reason = f"{PROMETHEUS} not installed (Debian package `prometheus`)"
    if os.environ.get("CELLECT_TEST_REQUIRE_PEERS"):
        pytest.fail(reason)
    pytest.skip(reason)


def _start_emulator(tmp: Path) -> tuple[Child, Emulator]:
    port = free_port()
    argv = [sys.executable, "-m", "receiver", "emulator", "--port", str(port)]
    argv += ["--sites", str(SITES), "--refresh-token", REFRESH_TOKEN, "--outage-rate", "0"]
    child = Child.start("emulator", argv, log=tmp / "emulator.log", cwd=tmp, env=child_env())
    emulator = Emulator(f"http://127.0.0.1:{port}")

    def listening() -> bool:
        assert child.alive(), child.tail()
        try:
            return emulator.http.get("/_emulator/clock").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(listening, within=WITHIN_S, what="the emulator to listen")
    return child, emulator


def _start_monitor(tmp: Path, emulator: Emulator) -> tuple[Child, str]:
    port = free_port()
    argv = [sys.executable, "-m", "receiver", "run", "--port", str(port)]
    argv += ["--database-url", f"sqlite:///{tmp}/monitor.db"]
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    env = child_env(
        CELLECT_API_URL=emulator.url,
        CELLECT_TOKEN_URL=emulator.url,
        CELLECT_REFRESH_TOKEN=REFRESH_TOKEN,
        CELLECT_REFRESH_TOKEN_EXPIRES_AT=expires,
        CELLECT_PORTFOLIO_INTERVAL_S="1",
        CELLECT_EVENTS_INTERVAL_S="1",
        CELLECT_EX_ANTE_INTERVAL_S="2",
        CELLECT_EX_POST_INTERVAL_S="2",
        CELLECT_RETRY_ATTEMPTS="1",  # a refused token is a failed poll at once
    )
    monitor = Child.start("monitor", argv, log=tmp / "monitor.log", cwd=tmp, env=env)
    target = f"127.0.0.1:{port}"

    def healthy() -> bool:
        assert monitor.alive(), monitor.tail()
        try:
            return httpx.get(f"http://{target}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, within=WITHIN_S, what="the monitor to listen")
    return monitor, target


def _start_prometheus(tmp: Path, target: str) -> tuple[Child, PromApi]:
    config, port = tmp / "prometheus.yml", free_port()
    # The rules unchanged: at speed 1 they mean what they say (and load like in compose).
    config.write_text(prometheus_config(target, RULES))
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    prometheus = Child.start("prometheus", argv, log=tmp / "prometheus.log", cwd=tmp)
    api = PromApi(f"http://127.0.0.1:{port}")
    wait_for(api.ready, within=WITHIN_S, what="Prometheus to be ready")
    return prometheus, api


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Emulator (token endpoint failing), monitor and Prometheus, just started."""
    _require_prometheus()
    tmp = tmp_path_factory.mktemp("dashboards-live")
    children: list[Child] = []
    try:
        emulator_child, emulator = _start_emulator(tmp)
        children.append(emulator_child)
        emulator.control("POST", "/faults", {"endpoint": "access-token", "error_rate": 1.0})
        monitor, target = _start_monitor(tmp, emulator)
        children.append(monitor)
        prometheus, api = _start_prometheus(tmp, target)
        children.append(prometheus)
        try:
            yield Stack(emulator, api, monitor, prometheus)
        finally:
            api.close()
            emulator.close()
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def fresh(stack: Stack) -> Snapshot:
    """Every panel once Prometheus has seen the monitor fail to get its first token."""
    refused = 'sum(cellect_api_requests_total{endpoint="access_token", code!="200"}) > 0'
    try:
        wait_for(lambda: stack.api.value(refused), within=WITHIN_S, what="a refused token")
        assert stack.api.value('sum(cellect_api_requests_total{code="200"})') == 0
    except AssertionError as exc:
        raise stack.explain(exc) from None
    return stack.snapshot()


@pytest.fixture(scope="module")
def stale(stack: Stack, fresh: Snapshot) -> Snapshot:
    """Every panel once site 1's box is cut off and site 2 has a planned outage ahead."""
    api, emulator = stack.api, stack.emulator
    emulator.control("DELETE", "/faults")
    all_live = f"count(cellect_site_state_of_charge_ratio) == {SITES}"
    all_polled = "count(cellect_poll_last_success_timestamp_seconds > 0) == 4"
    gone = f'absent(cellect_site_state_of_charge_ratio{{site_id="{STALE_SITE}"}})'
    announced = (
        f'cellect_site_next_planned_outage_start_timestamp_seconds{{site_id="{PLANNED_SITE}"}}'
    )
    try:
        for expr in (all_live, all_polled):
            wait_for(partial(api.value, expr), within=WITHIN_S, what=expr)
        emulator.outage(
            PLANNED_SITE, type="Planned", reason=3, source=1,
            duration_s=PLANNED_FOR_S, starts_in_s=PLANNED_IN_S,
        )  # fmt: skip
        emulator.box(int(STALE_SITE), online=False)
        for expr in (gone, announced):
            wait_for(partial(api.value, expr), within=WITHIN_S, what=expr)
    except AssertionError as exc:
        raise stack.explain(exc) from None
    return stack.snapshot()


def _bad_values(snapshot: Snapshot) -> list[str]:
    """NaN or infinite values anywhere, and ages or times-to-go that cannot be true."""
    bad = []
    for query, samples in snapshot.results.items():
        for labels, value in samples:
            wrong = not math.isfinite(value)
            if "time()" in query.expr:
                wrong = wrong or not SMALLEST_S <= value <= LARGEST_S
            if wrong:
                bad.append(f"{query.id} {labels}: {value}")
    return bad


def test_fresh_start_shows_no_impossible_value(fresh: Snapshot) -> None:
    """Before the first token and poll, no panel shows NaN or an age outside 0…1 year."""
    bad = _bad_values(fresh)
    assert bad == [], "\n".join(bad)


def test_fresh_start_ages_are_absent_not_1970(fresh: Snapshot) -> None:
    """Without a token yet, the portfolio poller (the one that needs the API even with no
    site known; the others succeed with nothing to visit) has no age, is counted among the
    pollers without a success, and the access token's time left is no data."""
    for panel in ("Poll age (in poll intervals)", "Poll age over time"):
        pollers = {labels["poller"] for labels, _ in fresh.of("cellect-service", panel)}
        assert "portfolio" not in pollers, panel
    assert fresh.of("cellect-service", "Access token expires in") == []
    (without_success,) = fresh.values("cellect-service", "Pollers without a success")
    assert without_success >= 1


@pytest.mark.parametrize(
    "panel",
    ["Sites", "Sites available", "Sites unavailable", "Stale sites", "Available discharge power"],
)
def test_fresh_start_counts_are_zero_not_empty(fresh: Snapshot, panel: str) -> None:
    """With no site known yet, the portfolio's counts and available power read 0."""
    assert fresh.values("cellect-portfolio", panel) == [0]


def test_stale_site_shows_no_impossible_value(stale: Snapshot) -> None:
    """With a site stale and an outage ahead, no panel shows NaN or an impossible age."""
    bad = _bad_values(stale)
    assert bad == [], "\n".join(bad)


@pytest.mark.parametrize(
    "panel",
    [
        "State of charge",
        "Power",
        "Energy",
        "Ratings",
        "State of charge over time",
        "Power over time",
    ],
)
def test_stale_site_live_values_are_absent(stale: Snapshot, panel: str) -> None:
    """The cut-off site's current-value panels show no data, not its last values, and its
    graphs have no point now (a gap, not a flat line)."""
    queries = queries_of(list(stale.results), "cellect-site", panel)
    assert all(stale.results[q] == [] for q in queries)


def test_stale_site_status_is_stale(stale: Snapshot) -> None:
    """The site dashboard's status says Stale (-1) for the cut-off site, though its last
    events poll still calls it available."""
    assert stale.values("cellect-site", "Status") == [-1]
    assert stale.values("cellect-site", "Status over time") == [-1]


def test_stale_site_is_counted_and_not_available(stale: Snapshot) -> None:
    """The portfolio counts the cut-off site as stale and not as available."""
    assert stale.values("cellect-portfolio", "Stale sites") == [1]
    assert stale.values("cellect-portfolio", "Sites available") == [SITES - 1]
    assert stale.values("cellect-portfolio", "Sites") == [SITES]


def test_stale_site_stands_out_on_the_map_and_in_lowest_soc(stale: Snapshot) -> None:
    """The map colours the cut-off site stale and the others available; the lowest-SoC
    gauge keeps it, as stale, beside the live sites' ratios."""
    statuses = stale.by_site("cellect-portfolio", "Site map")
    assert statuses == {"1": -1, "2": 1, "3": 1}
    lowest = stale.by_site("cellect-portfolio", "Lowest state of charge")
    assert lowest.pop(STALE_SITE) == -1
    assert sorted(lowest) == ["2", "3"]
    assert all(0 <= soc <= 1 for soc in lowest.values())


def test_available_power_leaves_the_stale_site_out(stale: Snapshot, stack: Stack) -> None:
    """Available discharge power sums the ratings of the live, available sites only."""
    live = stack.api.value(
        f'sum(cellect_site_rated_discharge_power_watts{{site_id!="{STALE_SITE}"}})'
    )
    assert live is not None
    assert live > 0
    assert stale.values("cellect-portfolio", "Available discharge power") == [live]


def test_planned_outage_ahead_is_listed_with_its_times(stale: Snapshot) -> None:
    """The outage announced for site 2 two hours ahead is counted and listed with its time
    to go (within those two hours) and its start (ms, as Grafana's date unit wants)."""
    title, site = "Upcoming planned outages", str(PLANNED_SITE)
    assert stale.values("cellect-portfolio", "Planned outages announced") == [1]
    (starts_in,) = stale.by_site("cellect-portfolio", title, "A").items()
    assert starts_in[0] == site
    assert 0 < starts_in[1] <= PLANNED_IN_S
    start = stale.by_site("cellect-portfolio", title, "B")[site]
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert now_ms < start <= now_ms + PLANNED_IN_S * 1000
    # The emulator publishes an event's end only once it has ended (end null while open),
    # so the "ends" column is empty here; the end gauge is pinned by the metrics tests.
    ends = stale.by_site("cellect-portfolio", title, "C")
    assert site not in ends or ends[site] > start
