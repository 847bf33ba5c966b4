"""What the dashboards promise an operator, read from their JSON: current values or none
(never a stale value held over hours), events counted once per bar, no 1970 timestamps
turned into ages, a fixed colour per meaning, and click-through to the site in view.

What the queries return against a real Prometheus and monitor is pinned in
tests/prometheus/test_dashboards_live.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from receiver.cellect.enums import ImplementationStatus
from receiver.metrics.registry import NOTIFICATION_OUTCOMES, WEBHOOK_OUTCOMES

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# Timestamps older monitors exported as 0 until known: an age computed from them is 56 years.
ZERO_UNTIL_KNOWN = (
    "cellect_poll_last_success_timestamp_seconds",
    "cellect_access_token_expiry_timestamp_seconds",
)
SITE_LINK = re.compile(r"^/d/cellect-site\?var-site=\$\{__(field\.labels|data\.fields)\.site_id\}&")
# Label values with one colour each, wherever a panel's series are named by that label.
MEANINGS = {
    "{{status}}": {s.name.lower() for s in ImplementationStatus},
    "{{outcome}}": {*WEBHOOK_OUTCOMES, *NOTIFICATION_OUTCOMES},
    "{{severity}}": {"critical", "warning"},
}


def _panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            found.append((f"{path.stem}: {panel['title']}", panel))
    return found


PANELS = _panels()


def _params(*kinds: str) -> list[Any]:
    """(name, panel) of every panel, or of the panels of `kinds`, as test parameters."""
    chosen = [(n, p) for n, p in PANELS if not kinds or p["type"] in kinds]
    return [pytest.param(name, panel, id=name) for name, panel in chosen]


@pytest.mark.parametrize(("name", "panel"), _params("stat", "bargauge"))
def test_current_value_panels_show_now_or_nothing(name: str, panel: dict[str, Any]) -> None:
    """Stat and bar-gauge panels query the instant and show its value ("last"), so a site
    that stopped reporting shows no data rather than its last value of the past hours."""
    assert panel["options"]["reduceOptions"]["calcs"] == ["last"], name
    for target in panel["targets"]:
        assert target["instant"] is True, name
        assert target["range"] is False, name


@pytest.mark.parametrize(("name", "panel"), _params())
def test_event_counts_use_the_bars_own_window(name: str, panel: dict[str, Any]) -> None:
    """A panel drawing increase() per bar or cell counts over exactly its own step
    (`[$__interval]` with a fixed min interval), so no event is counted in two bars."""
    custom = panel["fieldConfig"]["defaults"].get("custom", {})
    per_bar = custom.get("drawStyle") == "bars" or panel["type"] == "status-history"
    exprs = [t["expr"] for t in panel["targets"] if "increase(" in t["expr"]]
    if not per_bar or not exprs:
        return
    assert all("[$__interval]" in expr for expr in exprs), name
    assert re.fullmatch(r"\d+[mh]", panel.get("interval", "")), name


@pytest.mark.parametrize(("name", "panel"), _params())
def test_timestamps_zero_until_known_never_become_ages(name: str, panel: dict[str, Any]) -> None:
    """A timestamp some monitors export as 0 before it is known enters a panel only
    through `(… > 0)`, so it is "no data" there and never a −56-year age."""
    for target in panel["targets"]:
        for metric in ZERO_UNTIL_KNOWN:
            uses = target["expr"].count(metric)
            assert target["expr"].count(f"({metric} > 0)") == uses, (name, target["expr"])


@pytest.mark.parametrize(("name", "panel"), _params())
def test_each_meaning_has_its_own_colour(name: str, panel: dict[str, Any]) -> None:
    """Series named by status, outcome or severity get a fixed colour for each value by name,
    not the palette's next colour in the order Prometheus returned them."""
    legends = {t["legendFormat"] for t in panel["targets"]}
    named = {
        o["matcher"]["options"]
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byName"
    }
    for legend, values in MEANINGS.items():
        if legend in legends:
            expected = values & _label_values_of(panel, legend)
            assert expected, name
            assert expected <= named, (name, expected - named)


def _label_values_of(panel: dict[str, Any], legend: str) -> set[str]:
    """The values a panel's label can take: statuses everywhere; a webhook panel's outcomes
    are the webhook ones, a notification panel's the notification ones."""
    exprs = " ".join(t["expr"] for t in panel["targets"])
    if legend == "{{outcome}}":
        return set(NOTIFICATION_OUTCOMES if "notifications" in exprs else WEBHOOK_OUTCOMES)
    return MEANINGS[legend]


def test_portfolio_panels_naming_sites_link_to_the_site_dashboard() -> None:
    """Every portfolio panel that shows sites one by one links to the site dashboard with
    that site selected and the time range kept."""
    per_site = [
        (name, panel)
        for name, panel in PANELS
        if name.startswith("cellect-portfolio")
        and any("site_id" in t["legendFormat"] or t["format"] == "table" for t in panel["targets"])
    ]
    assert len(per_site) >= 5
    for name, panel in per_site:
        links = panel["fieldConfig"]["defaults"].get("links", [])
        assert links, name
        assert all(SITE_LINK.match(link["url"]) for link in links), (name, links)
        assert all(link["url"].endswith("${__url_time_range}") for link in links), name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panel_titles_are_unique_within_a_dashboard(path: Path) -> None:
    """No two panels of a dashboard share a title: an operator (and a test) names a panel
    by its title."""
    titles = [panel["title"] for panel in json.loads(path.read_text())["panels"]]
    assert len(titles) == len(set(titles))


# --- One replica or several (docs/metrics.md, "Several replicas: who exports what") --------

# Site gauges come from one replica at a time (the bucket's owner), from two for a moment
# while a bucket moves: a panel reads them aggregated over `instance`. Counters are summed
# (each replica's increase is its own part), so they may appear bare inside increase().
SITE_GAUGE = re.compile(r"\bcellect_site_(?!\w*_total\b)\w+")
WITHOUT_INSTANCE = re.compile(r"(?:max|min) without \(instance\) \($")
# Service series are each replica's own: joined per replica, never across replicas.
PER_REPLICA_JOINS = ("on (poller)", "on (job, poller)", "on (instance, poller)")


def _unaggregated_site_gauges(expr: str) -> list[str]:
    """The site gauges of `expr` not read through `max/min without (instance) (…)`."""
    return [
        match.group(0)
        for match in SITE_GAUGE.finditer(expr)
        if not WITHOUT_INSTANCE.search(expr[: match.start()])
    ]


def test_unaggregated_site_gauges_are_found() -> None:
    """The check below sees a bare site gauge and accepts an aggregated one."""
    assert _unaggregated_site_gauges("count(cellect_site_info)") == ["cellect_site_info"]
    assert _unaggregated_site_gauges("count(max without (instance) (cellect_site_info))") == []
    aggregated_then_bare = "max without (instance) (cellect_site_info) * cellect_site_power_watts"
    assert _unaggregated_site_gauges(aggregated_then_bare) == ["cellect_site_power_watts"]


@pytest.mark.parametrize(("name", "panel"), _params())
def test_site_gauges_are_one_series_per_site_whichever_replica_exports(
    name: str, panel: dict[str, Any]
) -> None:
    """Every site gauge a panel reads is aggregated `without (instance)`: a site exported by
    two replicas while its bucket moves is one site (no double count, no many-to-many join),
    and its series continues across the move instead of changing its labels."""
    for target in panel["targets"]:
        assert _unaggregated_site_gauges(target["expr"]) == [], (name, target["expr"])


@pytest.mark.parametrize(("name", "panel"), _params())
def test_service_series_are_joined_within_a_replica(name: str, panel: dict[str, Any]) -> None:
    """A panel joining two service series of the pollers matches them per replica
    (`on (job, instance, poller)`), so two replicas' pollers never meet; the built-in
    engine's alerts (on the alert leader, 0 elsewhere) are never summed over replicas."""
    for target in panel["targets"]:
        expr = target["expr"]
        assert not any(join in expr for join in PER_REPLICA_JOINS), (name, expr)
        if "cellect_alerts_firing" in expr:
            assert expr.count("cellect_alerts_firing") == expr.count(
                "max without (instance) (cellect_alerts_firing)"
            ), (name, expr)


def _service_panel(title: str) -> dict[str, Any]:
    (panel,) = [p for n, p in PANELS if n == f"cellect-service: {title}"]
    return panel


def test_the_replicas_panel_shows_each_replica_and_what_it_holds() -> None:
    """The service dashboard's Replicas table has one row per instance: its identity
    (cellect_replica_info), its poll buckets, portfolio and alerts leases, and its lease
    changes over the range — every query instant, per instance, merged into one table."""
    panel = _service_panel("Replicas")
    assert panel["type"] == "table"
    exprs = [t["expr"] for t in panel["targets"]]
    assert any("cellect_replica_info" in e for e in exprs)
    for kind in ("poll", "portfolio", "alerts"):
        assert f'sum by (instance) (cellect_leases_held{{kind="{kind}"}})' in exprs
    assert "sum by (instance) (increase(cellect_lease_changes_total[$__range]))" in exprs
    assert all(t["instant"] and t["format"] == "table" for t in panel["targets"])
    assert panel["transformations"][0]["id"] == "merge"


def test_leases_and_their_changes_are_drawn_per_replica_and_kind() -> None:
    """Leases held and lease changes over time: one series per instance and kind (and
    change), named so in the legend."""
    held = _service_panel("Leases held by replica")["targets"]
    assert [t["expr"] for t in held] == ["sum by (instance, kind) (cellect_leases_held)"]
    assert held[0]["legendFormat"] == "{{instance}} {{kind}}"
    (changes,) = _service_panel("Lease changes")["targets"]
    assert "by (instance, kind, change)" in changes["expr"]
    assert "rate(cellect_lease_changes_total[$__rate_interval])" in changes["expr"]
    assert changes["legendFormat"] == "{{instance}} {{kind}} {{change}}"
