"""The helpers of the end-to-end Prometheus tests: the time-scaled rules copy and the
Grafana variable substitution (what the e2e test relies on, pinned without Prometheus)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.panels import substitute
from tests.support.prometheus import RULES, EmulatedTime, scale_rules, seconds_of
from tests.support.tools import require_tool

CLOCK = EmulatedTime(anchor=2_000_000_000.0, real_anchor=1_000_000_000.0, speed=120)


def scaled() -> dict[str, dict[str, str]]:
    document = yaml.safe_load(scale_rules(RULES.read_text(), CLOCK))
    return {r["alert"]: r for group in document["groups"] for r in group["rules"]}


def test_seconds_of_reads_prometheus_durations() -> None:
    """Prometheus durations, compound ones included, become seconds; junk is refused."""
    assert seconds_of("15m") == 900
    assert seconds_of("1h30m") == 5400
    assert seconds_of("0m") == 0
    with pytest.raises(ValueError, match="duration"):
        seconds_of("15 m")


def test_for_and_ranges_are_divided_by_the_speed() -> None:
    """`for:` and range selectors shrink by the clock's speed, ranges to no less than 5 s."""
    rules = scaled()
    assert rules["SoCLow"]["for"] == "5s"  # 10m / 120
    assert rules["ImplementationFailed"]["for"] == "0s"
    ranged = "groups:\n- name: g\n  rules:\n  - alert: A\n    for: 1h\n    expr: x[15m] + y[5m]\n"
    [rule] = yaml.safe_load(scale_rules(ranged, CLOCK))["groups"][0]["rules"]
    assert rule["for"] == "30s"
    assert rule["expr"] == "x[8s] + y[5s]"  # 15m / 120 rounded up; 5m / 120 kept at 5 s


def test_holds_may_be_scaled_apart_from_the_clock() -> None:
    """A real-time monitor with scaled settings: `for:` shrinks, time() stays real time."""
    real = EmulatedTime(anchor=1_000_000_000.0, real_anchor=1_000_000_000.0, speed=1)
    document = yaml.safe_load(scale_rules(RULES.read_text(), real, hold_speed=240))
    rules = {r["alert"]: r for group in document["groups"] for r in group["rules"]}
    assert rules["ScheduleHorizonShort"]["for"] == "4s"  # 15m / 240, rounded up
    assert "(1000000000.000 + 1 * (time() - 1000000000.000))" in rules["DataStale"]["expr"]


def test_time_becomes_the_emulated_now() -> None:
    """time() in a rule reads the monitor's emulated clock, anchored on the emulator's."""
    expr = scaled()["DataStale"]["expr"]
    assert "(2000000000.000 + 120 * (time() - 1000000000.000))" in expr
    assert "time()" not in expr.replace("(time() - 1000000000.000)", "")


@pytest.mark.prometheus
def test_scaled_copy_passes_promtool(tmp_path: Path) -> None:
    """The scaled copy is still a valid rules file."""
    promtool = require_tool("promtool")
    copy = tmp_path / "rules.yml"
    copy.write_text(scale_rules(RULES.read_text(), CLOCK))
    result = subprocess.run(
        [promtool, "check", "rules", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_variables_are_substituted() -> None:
    """$name, ${name} and [[name]] are filled in; an unknown variable is an error."""
    expr = 'rate(x{site_id="$site"}[$__rate_interval]) + y{a="${site}", b="[[site]]"}'
    filled = substitute(expr, {"site": "2", "__rate_interval": "1m"})
    assert filled == 'rate(x{site_id="2"}[1m]) + y{a="2", b="2"}'
    with pytest.raises(KeyError, match="unknown"):
        substitute("x[$unknown]", {})
