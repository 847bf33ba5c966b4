"""Webhooks-only mode is quiet: a monitor without a refresh token, receiving webhooks, fires
nothing, in Prometheus with the shipped rules or in its built-in engine, over an hour.

The monitor is `cellect-monitor run` as the README starts it: settings in CELLECT_
environment variables, no CELLECT_REFRESH_TOKEN, so it only receives webhooks. It runs on
the real clock, so the hour is scaled: every alert threshold is set 240 times shorter
through its setting (the monitor exports them, and the rules read them), and the rules'
`for:` are divided by 240 (harness.scale_rules with `hold_speed`); time() stays real. A
"scaled hour" is then 15 real seconds, past which ApiDown (5 min), DataStale (10 min)
and WebhookSilence (1 h) would all have fired had they judged this mode wrongly. Webhooks
keep arriving meanwhile, for an entry an hour ahead (a plan: the site is scheduled).
Time passes by waiting for Prometheus to evaluate past given moments (bounded polls).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from receiver.cellect.timestamps import format_timestamp
from tests.support.prometheus import (
    RULES,
    BuiltinAlerts,
    Child,
    EmulatedTime,
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
FACTOR = 240
HOUR_S = 3600 / FACTOR
SECRET = "webhooks-only-secret-0001"
# Every threshold the rules read, FACTOR times shorter (the defaults of the README / 240).
SCALED = {
    "CELLECT_FAILURE_HOLD_S": 3600,
    "CELLECT_HORIZON_SHORT_S": 21600,
    "CELLECT_IN_PROGRESS_STUCK_S": 300,
    "CELLECT_STALE_AFTER_S": 600,
    "CELLECT_API_DOWN_AFTER_S": 300,
    "CELLECT_REFRESH_TOKEN_EXPIRING_S": 604800,
    "CELLECT_WEBHOOK_SILENCE_S": 3600,
}
# What a polling monitor exports and a webhooks-only one must not (no 0 placeholders).
POLLING_SERIES = (
    "cellect_poll_interval_seconds",
    "cellect_poll_last_success_timestamp_seconds",
    "cellect_access_token_expiry_timestamp_seconds",
    "cellect_api_credentials_refused",
    "cellect_api_failing_since_timestamp_seconds",
)


@dataclass
class Quiet:
    monitor: Child
    prometheus: Child
    api: PromApi
    builtin: BuiltinAlerts
    url: str
    started: float  # real Unix time once both run


def _environment(tmp: Path) -> dict[str, str]:
    scaled = {name: str(value / FACTOR) for name, value in SCALED.items()}
    return child_env(
        CELLECT_DATABASE_URL=f"sqlite:///{tmp}/monitor.db",
        CELLECT_WEBHOOK_SECRET=SECRET,
        **scaled,
    )


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quiet]:
    """`cellect-monitor run` without a refresh token, and a Prometheus scraping it."""
    require_prometheus()
    tmp = tmp_path_factory.mktemp("webhooks-only")
    monitor, target = start_monitor(tmp, [], _environment(tmp), port=free_port())
    prometheus: Child | None = None
    builtin = BuiltinAlerts(tmp / "monitor.db")
    try:
        now = time.time()
        clock = EmulatedTime(anchor=now, real_anchor=now, speed=1)
        rules = scale_rules(RULES.read_text(), clock, hold_speed=FACTOR)
        prometheus, api = start_prometheus(tmp, target, rules)
        try:
            yield Quiet(monitor, prometheus, api, builtin, f"http://{target}", time.time())
        finally:
            api.close()
    finally:
        for child in (prometheus, monitor):
            if child is not None:
                child.stop()
        builtin.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _deliver(url: str, n: int) -> None:
    """One accepted webhook: site 1's entry `n`, an hour ahead, Implemented."""
    start = datetime.now(UTC) + timedelta(hours=1, minutes=15 * n)
    entry = {
        "start": format_timestamp(start),
        "end": format_timestamp(start + timedelta(minutes=15)),
        "status": 2,
    }
    response = httpx.post(
        f"{url}/webhooks/time-series",
        params={"token": SECRET},
        json={"siteId": 1, "schedule": [entry]},
    )
    assert response.status_code == 200, response.text


def test_nothing_fires_over_a_scaled_hour(quiet: Quiet) -> None:
    """Over a scaled hour (and a bit) of webhooks, no rule is even pending in Prometheus
    and the built-in engine recorded no alert at all."""
    steps = 6
    for n in range(steps):
        _deliver(quiet.url, n)
        moment = quiet.started + (n + 1) * HOUR_S * 1.2 / steps
        wait_for(lambda m=moment: quiet.api.evaluated_after(m), within=30, what="evaluations")
    assert quiet.monitor.alive(), quiet.monitor.tail()
    # The site is scheduled: its horizon was exported. (Not at every scrape: at 2.5 s,
    # CELLECT_STALE_AFTER_S is shorter than the 5 s alert tick that refreshes it.)
    assert quiet.api.query("max_over_time(cellect_site_schedule_horizon_seconds[5m])")
    assert quiet.api.query("ALERTS") == []
    assert quiet.api.query("count_over_time(ALERTS[5m])") == []
    assert quiet.builtin.ever() == frozenset()


def test_no_poll_or_token_series_exist(quiet: Quiet) -> None:
    """The webhooks-only monitor exports no poller, token or API-health series."""
    body = httpx.get(f"{quiet.url}/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line[:1] != "#"}
    assert names.isdisjoint(POLLING_SERIES)
    for series in POLLING_SERIES:
        assert quiet.api.query(series) == []
