"""The Docker packaging and the Grafana provisioning and dashboards.

Docker itself is not needed: the compose file, the Dockerfile and the dashboards are
parsed and checked against the repository (mounted paths exist, the image runs as a
non-root user with a health check, every panel queries only exported metrics through
the provisioned datasource). promtool, when installed, parses every panel expression.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_alert_rules import (
    KNOWN_LABELS,
    KNOWN_METRICS,
    ROOT,
    promql_names,
    promtool,
)

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "cellect.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DASHBOARD_UIDS = {"cellect-portfolio", "cellect-site", "cellect-service"}
BUILTIN_PANELS = {
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "geomap",
    "state-timeline",
    "status-history",
    "text",
    "row",
    "barchart",
    "piechart",
    "heatmap",
    "histogram",
}
# Gauges exported for the dashboards only (not named by docs/metrics.md's catalogue or the rules).
DASHBOARD_GAUGES = frozenset(
    {
        "cellect_site_next_planned_outage_start_timestamp_seconds",
        "cellect_site_next_planned_outage_end_timestamp_seconds",
    }
)
# What Grafana substitutes into expressions, with values that make valid PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$site": "1",
}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of a service's bind mounts, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository path a container path of the service is mounted from, if any."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return (ROOT / source / posixpath.relpath(container_path, target)).resolve()
    return None


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dashboard(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(board) for target in panel.get("targets", [])]


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_every_compose_service_has_an_image_or_a_build() -> None:
    """Each docker-compose service names an image or a build context that has a Dockerfile;
    `docker compose up` starts the monitor, Prometheus and Grafana (the others belong to
    a profile)."""
    services = compose()["services"]
    assert {n for n, s in services.items() if not s.get("profiles")} == {
        "monitor",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (ROOT / context / "Dockerfile").is_file(), name


def test_every_compose_host_path_exists() -> None:
    """Every host path docker-compose mounts exists in the repository."""
    document = compose()
    named = set(document.get("volumes") or {})
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: undeclared volume {source}"


def test_compose_runs_the_monitor_with_the_emulator_on_all_interfaces() -> None:
    """The monitor service runs `run --emulator --host 0.0.0.0` and publishes port 8080."""
    monitor = compose()["services"]["monitor"]
    command = monitor["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    assert command[0] == "run"
    assert "--emulator" in command
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert any(str(port).endswith("8080:8080") for port in monitor["ports"])


def test_compose_prometheus_finds_its_config_and_rules() -> None:
    """The prometheus container gets its config and the rule files it names from the repo."""
    service = compose()["services"]["prometheus"]
    flags = dict(arg.split("=", 1) for arg in service["command"] if "=" in arg)
    config_in_container = flags["--config.file"]
    config = host_path(service, config_in_container)
    assert config is not None
    assert config.is_file()
    assert config == (ROOT / "prometheus" / "prometheus.yml").resolve()
    for rule_file in yaml.safe_load(config.read_text())["rule_files"]:
        in_container = posixpath.normpath(
            posixpath.join(posixpath.dirname(config_in_container), rule_file)
        )
        on_host = host_path(service, in_container)
        assert on_host is not None, in_container
        assert on_host.is_file(), in_container


def test_compose_grafana_provisions_the_dashboards_for_anonymous_viewers() -> None:
    """Grafana gets the provisioning and dashboard folders and lets anonymous users view."""
    service = compose()["services"]["grafana"]
    assert (
        host_path(service, "/etc/grafana/provisioning")
        == (ROOT / "grafana" / "provisioning").resolve()
    )
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    assert (
        host_path(service, provider["options"]["path"])
        == (ROOT / "grafana" / "dashboards").resolve()
    )
    environment = service["environment"]
    assert str(environment["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    """The Dockerfile builds in one stage and runs from python:3.11-slim in another."""
    stages = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(stages) >= 2
    assert stages[-1].split()[0] == "python:3.11-slim"
    copies = [args for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    assert any(args.startswith("--from=") for args in copies)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    """The image's last USER is neither root nor uid 0."""
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_health_check_asks_healthz() -> None:
    """The HEALTHCHECK fetches http://127.0.0.1:8080/healthz with Python's urllib."""
    (check,) = [args for keyword, args in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert "urllib" in check
    assert "http://127.0.0.1:8080/healthz" in check


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    """ENTRYPOINT is the `cellect-monitor` console script of pyproject.toml and CMD is `run`."""
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["cellect-monitor"]
    assert json.loads(instructions["CMD"]) == ["run"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "cellect-monitor" in pyproject["project"]["scripts"]


def test_dockerfile_keeps_the_database_on_the_data_volume() -> None:
    """CELLECT_DATABASE_URL points at an SQLite file under the /data volume."""
    instructions = dockerfile_instructions()
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    match = re.search(r"CELLECT_DATABASE_URL=(\S+)", env)
    assert match is not None
    assert match.group(1).startswith("sqlite:////data/")
    volumes = [args for keyword, args in instructions if keyword == "VOLUME"]
    assert any("/data" in args for args in volumes)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """.dockerignore excludes none of the files the Dockerfile copies from the context."""
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from="):
            sources = args.split()[:-1]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def test_dashboards_have_the_three_stable_uids() -> None:
    """The dashboards are exactly the portfolio, site and service ones, with unique uids."""
    uids = [dashboard(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))
    assert set(uids) == DASHBOARD_UIDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_uses_the_provisioned_datasource(path: Path) -> None:
    """Every panel and target of a dashboard refers to the provisioned Prometheus by its uid."""
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uid = datasource["uid"]
    board = dashboard(path)
    assert board["schemaVersion"] >= 39
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == uid


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_panels_are_built_in_with_unique_ids(path: Path) -> None:
    """A dashboard uses only panel types built into Grafana, and panel ids do not repeat."""
    board = dashboard(path)
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel["type"] in BUILTIN_PANELS, panel["type"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_only_exported_metrics(path: Path) -> None:
    """Every panel expression names only metrics and labels the monitor exports."""
    for expr in expressions(dashboard(path)):
        metrics, labels = promql_names(expr)
        assert metrics, expr
        known = KNOWN_METRICS | DASHBOARD_GAUGES
        assert metrics <= known, (expr, metrics - known)
        assert labels <= KNOWN_LABELS, (expr, labels - KNOWN_LABELS)


def test_portfolio_map_places_sites_by_their_coordinates() -> None:
    """The portfolio's geomap reads latitude and longitude of cellect_site_info as coordinates."""
    board = dashboard(ROOT / "grafana" / "dashboards" / "cellect-portfolio.json")
    (geomap,) = [panel for panel in panels(board) if panel["type"] == "geomap"]
    assert "cellect_site_info" in geomap["targets"][0]["expr"]
    assert "cellect_site_available" in geomap["targets"][0]["expr"]
    location = geomap["options"]["layers"][0]["location"]
    assert location == {"mode": "coords", "latitude": "latitude", "longitude": "longitude"}


def test_site_dashboard_selects_a_site_by_name() -> None:
    """The site dashboard's `site` variable shows each site's name and has its id as value,
    taken from the lines query_result(cellect_site_info) gives Grafana; every panel of the
    dashboard filters on that id."""
    board = dashboard(ROOT / "grafana" / "dashboards" / "cellect-site.json")
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "site"]
    assert variable["query"]["query"] == "query_result(cellect_site_info)"
    assert variable["query"]["varQuery"] == "cellect_site_info"
    # Grafana writes each result as the series with its labels in alphabetical order.
    line = (
        'cellect_site_info{country="DE", instance="monitor:8080", job="cellect-monitor",'
        ' latitude="52.52", longitude="13.405", site_id="17", site_name="Berlin Süd"}'
        " 1 1700000000000"
    )
    pattern = variable["regex"].strip("/").replace("(?<", "(?P<")  # JS → Python groups
    match = re.search(pattern, line)
    assert match is not None
    assert (match["value"], match["text"]) == ("17", "Berlin Süd")
    assert all('site_id="$site"' in expr for expr in expressions(board))


@pytest.mark.prometheus
def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel expression (Grafana's variables substituted) as PromQL."""
    rules = []
    for path in DASHBOARDS:
        for index, expr in enumerate(expressions(dashboard(path))):
            expr = substitute(expr)
            assert "$" not in expr, expr
            rules.append(
                {"record": f"dashboard:{path.stem.replace('-', '_')}:{index}", "expr": expr}
            )
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_ships_the_consoles_templates_and_static_files() -> None:
    """Every file of the console's templates/ and static/ matches a package-data pattern of
    pyproject.toml, so an installed (not editable) monitor serves its pages."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["*"]
    console = ROOT / "receiver" / "web" / "console"
    shipped = [p for folder in ("templates", "static") for p in (console / folder).iterdir()]
    assert shipped
    for path in shipped:
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), path.name
