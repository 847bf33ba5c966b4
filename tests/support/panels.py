"""The PromQL of every Grafana dashboard panel, with Grafana's variables filled in the way
Grafana would before sending the query to Prometheus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What Grafana puts in for its built-in variables on a "last 5 minutes" dashboard with a
# 15 s scrape interval ($__rate_interval is four scrape intervals there).
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}: {self.panel} [{self.ref_id}]"


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with `$name`, `${name}` and `[[name]]` replaced; unknown names are an error."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"no value for the Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows carry their own panels


def panel_queries(directory: Path, variables: Mapping[str, str]) -> list[PanelQuery]:
    """Every target of every panel of the dashboards in `directory`, variables filled in."""
    queries = []
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard.get("panels", [])):
            values = {**GRAFANA_VARIABLES, **_own_interval(panel), **variables}
            for target in panel.get("targets", []):
                if target.get("expr"):
                    expr = substitute(target["expr"], values)
                    title = panel.get("title", "?")
                    queries.append(PanelQuery(path.stem, title, target.get("refId", "?"), expr))
    return queries


def _own_interval(panel: Mapping[str, Any]) -> dict[str, str]:
    """A panel's min interval is its $__interval on a short range (Grafana takes the larger
    of the two): bars counting events per window are written for that width."""
    interval = panel.get("interval")
    return {"__interval": interval} if interval else {}


def queries_of(queries: list[PanelQuery], dashboard: str, panel: str) -> list[PanelQuery]:
    """The queries of one panel, by dashboard file stem and panel title (must exist)."""
    found = [q for q in queries if q.dashboard == dashboard and q.panel == panel]
    assert found, f"no panel {panel!r} in {dashboard}"
    return found


def panels_without_queries(directory: Path) -> list[str]:
    """Panels (other than rows) that have no PromQL target: they could never show data."""
    missing = []
    for path in sorted(directory.glob("*.json")):
        for panel in _panels(json.loads(path.read_text()).get("panels", [])):
            targets = [t for t in panel.get("targets", []) if t.get("expr")]
            if panel.get("type") != "row" and not targets:
                missing.append(f"{path.stem}: {panel.get('title')}")
    return missing
