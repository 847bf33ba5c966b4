"""The Prometheus alert rules in alerts/ and the Prometheus configs in prometheus/.

promtool checks the rules, runs their unit tests and checks the configs; the rest pins
what promtool cannot: the rules file and the alert catalogue (receiver/alerting/
catalogue.py, which the built-in engine follows) agree in both directions — names,
severities, holds, thresholds read from the monitor's settings, runbook links whose
sections exist in docs/alerts.md, site names on site alerts — and every expression
only uses the metric names and labels the monitor exports. The metric catalogue here
doubles as the one the dashboard tests in test_packaging.py use.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.alerting.catalogue import (
    CATALOGUE,
    RATIO_THRESHOLD_METRIC,
    THRESHOLD_METRIC,
    Scope,
    spec,
)
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "cellect.rules.yml"
RULE_TESTS = ROOT / "alerts" / "tests" / "cellect.rules.test.yml"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
README = ROOT / "README.md"
PROMETHEUS_CONFIGS = [
    ROOT / "prometheus" / "prometheus.yml",
    ROOT / "prometheus" / "prometheus.local.yml",
    ROOT / "prometheus" / "prometheus.replicas.yml",
]


# The metric catalogue (docs/metrics.md), with the series a histogram exports under its name.
DESIGN_METRICS = frozenset(
    {
        "cellect_site_info",
        "cellect_site_state_of_charge_ratio",
        "cellect_site_power_watts",
        "cellect_site_energy_capacity_joules",
        "cellect_site_rated_charge_power_watts",
        "cellect_site_rated_discharge_power_watts",
        "cellect_site_available",
        "cellect_site_schedule_horizon_seconds",
        "cellect_site_last_update_timestamp_seconds",
        "cellect_schedule_entries_total",
        "cellect_schedule_implementation_failures_total",
        "cellect_webhook_requests_total",
        "cellect_webhook_request_duration_seconds_bucket",
        "cellect_webhook_request_duration_seconds_sum",
        "cellect_webhook_request_duration_seconds_count",
        "cellect_api_requests_total",
        "cellect_api_request_duration_seconds_bucket",
        "cellect_api_request_duration_seconds_sum",
        "cellect_api_request_duration_seconds_count",
        "cellect_poll_last_success_timestamp_seconds",
        "cellect_access_token_expiry_timestamp_seconds",
        "cellect_alerts_firing",
        "cellect_notifications_total",
        "cellect_notification_outbox_pending",
        "cellect_site_energy_planned_joules_total",
        "cellect_site_energy_delivered_joules_total",
    }
)
# Gauges the monitor exports for the alert rules (documented in alerts/cellect.rules.yml).
RULE_GAUGES = frozenset(
    {
        "cellect_site_unavailable_info",
        "cellect_site_soc_low_threshold_ratio",
        "cellect_site_soc_high_threshold_ratio",
        "cellect_schedule_entries_in_progress_near_start",
        "cellect_refresh_token_expiry_timestamp_seconds",
        "cellect_poll_interval_seconds",
        "cellect_alert_threshold_seconds",
        "cellect_monitor_start_time_seconds",
        "cellect_api_failing_since_timestamp_seconds",
        "cellect_api_credentials_refused",
        "cellect_webhook_last_accepted_timestamp_seconds",
        "cellect_schedule_last_implementation_failure_timestamp_seconds",
        "cellect_site_planned_soc_min_ratio",
        "cellect_site_planned_soc_max_ratio",
        "cellect_site_plan_breach_timestamp_seconds",
        "cellect_site_plan_breach_entry_start_timestamp_seconds",
        "cellect_site_plan_shortfall_joules",
        "cellect_alert_threshold_ratio",
        "cellect_site_tracking_error_ratio",
    }
)
# Prometheus' own series about the scrape (MonitorDown).
PROMETHEUS_SERIES = frozenset({"up"})
# Each replica's leases and identity (docs/metrics.md, "Several replicas: who exports what").
REPLICA_SERIES = frozenset(
    {"cellect_leases_held", "cellect_lease_changes_total", "cellect_replica_info"}
)
KNOWN_METRICS = DESIGN_METRICS | RULE_GAUGES | PROMETHEUS_SERIES | REPLICA_SERIES
KNOWN_LABELS = frozenset(
    {
        "site_id",
        "site_name",
        "country",
        "latitude",
        "longitude",
        "status",
        "outcome",
        "endpoint",
        "code",
        "poller",
        "rule",
        "severity",
        "type",
        "reason",
        "source",
        "le",
        "downtime",
        "job",
        "instance",
        "kind",
        "change",
        "replica_id",
        "host",
        "version",
    }
)
# Every site rule ends in this join, which names the site from whichever replica exports
# it, or from the past 2 minutes in a bucket move's gap (see the rules file's header).
SITE_NAME_JOIN = (
    "* on (job, site_id) group_left (site_name) ( "
    "group by (job, site_id, site_name) (cellect_site_info) "
    "or on (job, site_id) group by (job, site_id) (cellect_schedule_implementation_failures_total) "
    "or on (job, site_id) group by (job, site_id, site_name) "
    "(last_over_time(cellect_site_info[2m])) "
    "or on (job, site_id) group by (job, site_id) "
    "(last_over_time(cellect_schedule_implementation_failures_total[2m])) )"
)
# A site rule's second half counts only for a site that no replica exports right now.
SITE_EXPORTED_NOW = (
    "unless on (job, site_id) (cellect_site_info or cellect_schedule_implementation_failures_total)"
)
# Service rules judge one replica (the alert carries `instance`) or the deployment (`job`
# only); the rules file says why for each. Site rules are one alert per site.
PER_REPLICA = frozenset({"ApiDown", "AuthFailing", "MonitorDown"})
PER_DEPLOYMENT = frozenset({"RefreshTokenExpiring", "WebhookSilence", "AlertLeaderMissing"})

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "inf", "nan", "offset", "group_left", "group_right"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![\w.$:])([a-zA-Z_:][\w:]*)(\s*\()?")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names an expression refers to.

    A lexical scan, enough for the expressions in this repository: strings, label
    matchers, grouping clauses, ranges and offsets are cut out first, and what is left
    is a metric name unless it is a function call or a keyword.
    """
    labels: set[str] = set()
    text = _STRING.sub('""', expr)
    for body in _MATCHERS.findall(text):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body))
    text = _MATCHERS.sub(" ", text)
    for body in _GROUPING.findall(text):
        labels |= set(re.findall(r"[a-zA-Z_]\w*", body))
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    metrics = {
        match.group(1)
        for match in _IDENT.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }
    return metrics, labels


def seconds(duration: str) -> float:
    """A rule's `for` (`0m`, `15m`, `2h`) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration)))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def load_rule_tests() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULE_TESTS.read_text())
    return [case for group in document["tests"] for case in group["alert_rule_test"]]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def doc_anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", path.read_text(), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


def one_line(expr: str) -> str:
    return " ".join(expr.split())


def test_promql_names_separates_metrics_from_labels_functions_and_literals() -> None:
    """The scanner finds metric and label names, not functions, keywords or durations."""
    metrics, labels = promql_names(
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="$site", y!~"b c"}[5m])))'
        " > on (z) group_left () b offset 1h or vector(1e3) and bool c"
    )
    assert metrics == {"a_bucket", "b", "c"}
    assert labels == {"le", "x", "y", "z"}


@pytest.mark.prometheus
def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts alerts/cellect.rules.yml."""
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_rule_unit_tests_pass() -> None:
    """Every promtool unit test of alerts/tests/cellect.rules.test.yml passes."""
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_prometheus_config_passes_promtool_check(config: Path) -> None:
    """`promtool check config` accepts each Prometheus config, rule files included."""
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_rules_are_the_catalogue_alerts_and_severities() -> None:
    """The rules file fires exactly the catalogue's (alert, severity) pairs, each from one
    rule, and nothing the catalogue does not know."""
    pairs = [(rule["alert"], rule["labels"]["severity"]) for rule in load_rules()]
    expected = [(s.name, str(severity)) for s in CATALOGUE for severity in s.severities]
    assert sorted(pairs) == sorted(expected)


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_rule_holds_and_links_as_the_catalogue_says(rule: dict[str, Any]) -> None:
    """Each rule's `for` is its catalogue hold (the built-in engine's), its runbook_url
    the catalogue's, and it carries a summary and a description."""
    entry = spec(rule["alert"])
    assert seconds(str(rule["for"])) == entry.for_s
    assert rule["annotations"]["runbook_url"] == entry.runbook_url
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_rule_reads_its_threshold_from_the_monitor(rule: dict[str, Any]) -> None:
    """A rule compares with the gauge its catalogue entry names (the monitor's setting),
    never with a threshold of its own: the only numbers are 0, 1 and the 2 of "two
    poll intervals"."""
    entry, expr = spec(rule["alert"]), one_line(rule["expr"])
    if entry.exported_threshold:
        assert f'{THRESHOLD_METRIC}{{rule="{entry.name}"}}' in expr
    elif entry.setting is not None and entry.gauge is not None:
        assert entry.gauge in expr
    mentioned = set(re.findall(r'cellect_alert_threshold_seconds\{rule="(\w+)"\}', expr))
    assert mentioned <= {entry.name}
    numbers = re.findall(r"(?<![\w.\"])\d+(?:\.\d+)?(?![\w\"])", _STRING.sub('""', expr))
    assert set(numbers) <= {"0", "1", "2"}, numbers


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_site_rules_name_the_site(rule: dict[str, Any]) -> None:
    """Site alerts carry site_id and site_name (the join); service alerts have no site."""
    expr = one_line(rule["expr"])
    if spec(rule["alert"]).scope is Scope.SITE:
        assert SITE_NAME_JOIN in expr
        assert "site_id" in rule["annotations"]["description"]
    else:
        assert "site_name" not in expr


_LAST_OVER_TIME = re.compile(r"last_over_time\(\s*([a-zA-Z_:][\w:]*)(\{[^}]*\})?\[2m\]\)")


def _site_series(expr: str) -> set[str]:
    """The metrics of a site rule's condition, the naming join and the "exported now"
    check left out."""
    condition = expr.split(SITE_NAME_JOIN)[0].replace(SITE_EXPORTED_NOW, "")
    metrics, _ = promql_names(condition)
    return metrics - {THRESHOLD_METRIC, RATIO_THRESHOLD_METRIC}


@pytest.mark.parametrize(
    "rule",
    [r for r in load_rules() if spec(r["alert"]).scope is Scope.SITE],
    ids=lambda rule: f"{rule['alert']}-{rule['labels']['severity']}",
)
def test_site_rules_hold_over_a_bucket_move(rule: dict[str, Any]) -> None:
    """A site rule never matches a site's series `on (instance)` (one alert per site,
    whichever replica exports it); it aggregates every site series without `instance`;
    and it judges the condition again on each site series' last value of the past 2
    minutes for a site no replica exports now, so a move's gap does not resolve it."""
    expr = one_line(rule["expr"])
    assert "instance" not in expr.replace("without (instance", ""), expr
    assert SITE_EXPORTED_NOW in expr
    bridged = {m.group(1) for m in _LAST_OVER_TIME.finditer(expr.split(SITE_NAME_JOIN)[0])}
    site_series = _site_series(expr)
    assert site_series, expr
    # Every site series of the condition is read now and over the past 2 minutes, and
    # nothing else is bridged (a threshold every replica exports needs no bridge).
    assert bridged == site_series, (bridged, site_series)
    for metric in site_series:
        assert re.search(rf"(max|min) without \(instance(, type)?\) \({metric}\b", expr), metric


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_service_rules_judge_a_replica_or_the_deployment(rule: dict[str, Any]) -> None:
    """A service rule is either a replica's (it matches on, or keeps, `instance`) or the
    deployment's (it aggregates `by (job)` and never names `instance`), as PER_REPLICA and
    PER_DEPLOYMENT say; per-deployment thresholds are read `max by (job)`."""
    name, expr = rule["alert"], one_line(rule["expr"])
    if spec(name).scope is Scope.SITE:
        return
    assert name in PER_REPLICA | PER_DEPLOYMENT, name
    if name in PER_DEPLOYMENT:
        assert "instance" not in expr, expr
        assert "by (job)" in expr, expr
        if spec(name).exported_threshold:
            assert f'max by (job) ({THRESHOLD_METRIC}{{rule="{name}"}})' in expr
    elif "(job" in expr:
        assert "(job, instance" in expr, expr


def _three_replica_cases() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(test, alert case) of the promtool tests whose series come from three instances of
    one job."""
    document = yaml.safe_load(RULE_TESTS.read_text())
    found = []
    for test in document["tests"]:
        series = [s["series"] for s in test["input_series"]]
        instances = {m for s in series for m in re.findall(r'instance="([^"]+)"', s)}
        if len(instances) == 3 and all('job="cellect-monitor"' in s for s in series):
            found += [(test, case) for case in test["alert_rule_test"]]
    return found


@pytest.mark.parametrize("alert", sorted(s.name for s in CATALOGUE))
def test_every_rule_is_tested_with_three_replicas(alert: str) -> None:
    """Each alert has a promtool case with three replicas of one job where it fires with
    exactly the labels its scope gives: a site alert once per site, with `job` but no
    `instance`, in a test where the site's series move between instances (stale on one,
    then exported by another); a service alert with `instance` when it is a replica's and
    without when it is the deployment's."""
    cases = [(t, c) for t, c in _three_replica_cases() if c["alertname"] == alert]
    firing = [(t, c) for t, c in cases if c.get("exp_alerts")]
    assert firing, f"{alert} is never expected to fire with three replicas"
    per_site = []
    for test, case in firing:
        labels = [a["exp_labels"] for a in case["exp_alerts"]]
        assert all(label["job"] == "cellect-monitor" for label in labels)
        if spec(alert).scope is Scope.SITE:
            # (DataStale also fires without a site: for the deployment, without instance.)
            assert all("instance" not in label for label in labels), case
            sites = [
                (label["site_id"], label["severity"]) for label in labels if "site_id" in label
            ]
            assert len(sites) == len(set(sites)), case
            if sites:
                values = " ".join(s["values"] for s in test["input_series"])
                assert "stale" in values, test["name"]
            per_site += sites
        else:
            assert all(("instance" in label) is (alert in PER_REPLICA) for label in labels)
    assert per_site or spec(alert).scope is Scope.SERVICE, alert


@pytest.mark.parametrize("site_rule", sorted(s.name for s in CATALOGUE if s.scope is Scope.SITE))
def test_site_rules_are_checked_through_a_moves_gap(site_rule: str) -> None:
    """Each site alert is expected firing at an evaluation where none of the three
    replicas exports its site (every instance's series of it stale or not started), or
    right at the end of a hold (`for`) that such an evaluation interrupted: the gap
    neither resolves it nor restarts its hold."""
    hold = spec(site_rule).for_s
    checked = 0
    for test, case in _three_replica_cases():
        if case["alertname"] != site_rule or not case.get("exp_alerts"):
            continue
        step = seconds(str(test["interval"]))
        now = int(seconds(str(case["eval_time"])) / step)
        first = now - int(hold / step) if hold else now  # the steps the alert had to hold
        for expected in case["exp_alerts"]:
            site = expected["exp_labels"].get("site_id")
            of_site = [
                s["values"].split()
                for s in test["input_series"]
                if site is not None and f'site_id="{site}"' in s["series"]
            ]
            gaps = [
                minute
                for minute in range(first, now + 1)
                if of_site and not any(_exported_at(values, minute) for values in of_site)
            ]
            checked += bool(gaps)
    assert checked, f"{site_rule} is never checked through a time no replica exports its site"


def _exported_at(values: list[str], step: int) -> bool:
    """Whether a promtool series (its value words) has a sample, not a stale marker or a
    gap, at `step`."""
    expanded: list[str] = []
    for word in values:
        match = re.fullmatch(r"(_|stale|[-+.\de]+)(?:([-+][.\de]+))?x(\d+)", word)
        if match is None:
            expanded.append(word)
        elif match.group(1) in ("_", "stale"):
            expanded += [match.group(1)] * int(match.group(3))
        else:
            expanded += ["v"] * (int(match.group(3)) + 1)
    return step < len(expanded) and expanded[step] not in ("_", "stale")


def test_every_runbook_section_exists() -> None:
    """Every catalogue alert's runbook anchor is a heading of docs/alerts.md."""
    missing = {s.name for s in CATALOGUE if s.anchor not in doc_anchors(ALERTS_DOC)}
    assert not missing


def test_the_readme_lists_the_catalogue() -> None:
    """README's alert list names exactly the catalogue's alerts."""
    text = README.read_text()
    start = text.index("- Alert rules (")
    listing = text[start : text.index("\n- ", start + 1)]
    named = set(re.findall(r"\b[A-Z][a-z]*[A-Z]\w*\b", listing))  # CamelCase: alert names
    assert named == {s.name for s in CATALOGUE}


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_rule_uses_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    """A rule's expression names only metrics and labels the monitor exports."""
    metrics, labels = promql_names(rule["expr"])
    assert metrics, rule["expr"]
    assert metrics <= KNOWN_METRICS, metrics - KNOWN_METRICS
    assert labels <= KNOWN_LABELS, labels - KNOWN_LABELS


@pytest.mark.parametrize("alert", sorted(s.name for s in CATALOGUE))
def test_every_rule_is_tested_firing_and_silent(alert: str) -> None:
    """Each alert has a unit test firing it, annotations checked, and one keeping it silent."""
    cases = [case for case in load_rule_tests() if case["alertname"] == alert]
    firing = [case for case in cases if case.get("exp_alerts")]
    silent = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"{alert} is never expected to fire"
    assert silent, f"{alert} is never expected to stay silent"
    for case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_labels"]["severity"]
            assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}


@pytest.mark.parametrize(
    ("config", "target"),
    [(PROMETHEUS_CONFIGS[0], "monitor:8080"), (PROMETHEUS_CONFIGS[1], "127.0.0.1:8080")],
    ids=["compose", "local"],
)
def test_prometheus_config_scrapes_the_monitor_and_loads_the_rules(
    config: Path, target: str
) -> None:
    """Each Prometheus config scrapes the monitor's /metrics and loads alerts/cellect.rules.yml."""
    document = yaml.safe_load(config.read_text())
    (job,) = document["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [target]
    rule_files = [(config.parent / name).resolve() for name in document["rule_files"]]
    assert rule_files == [RULES]
