"""Helpers of the end-to-end Prometheus tests: child processes, a time-scaled copy of the
alert rules, Prometheus' HTTP API, the emulator's control API and a partner's API calls.

Everything talks to loopback only, every wait is a bounded poll of something observable,
and every child process is terminated (then killed after a bounded wait) by its owner.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest
import yaml
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from receiver.cellect import paths
from receiver.cellect.timestamps import format_timestamp, parse_timestamp
from receiver.storage.alert_tables import AlertRecord
from receiver.storage.alerts import firing_alerts

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "cellect.rules.yml"
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
T = TypeVar("T")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)(ms|[smhdw])")
_RANGE = re.compile(r"\[([^\]:]+)\]")


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the child binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None], *, within: float, every: float = 0.25, what: str = ""
) -> T:
    """Poll `probe` (bounded in real time) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what or probe}")
        time.sleep(every)


# --- child processes ----------------------------------------------------------------------


@dataclass
class Child:
    """A child process whose output goes to a log file (shown when a test fails)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: Sequence[str], *, log: Path, **kwargs: Any) -> Child:
        handle: IO[bytes] = log.open("wb")
        try:
            process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, **kwargs)
        finally:
            handle.close()  # the child holds its own descriptor
        return cls(name, process, log)

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- last lines of {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace_s`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace_s)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for the monitor: ours without any CELLECT_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def require_prometheus() -> None:
    """Skip without the Prometheus binary, or fail when peers are required (CI)."""
    if os.access(PROMETHEUS, os.X_OK):
        return
    reason = f"{PROMETHEUS} not installed (Debian package `prometheus`)"
    if os.environ.get("CELLECT_TEST_REQUIRE_PEERS"):
        pytest.fail(reason)
    pytest.skip(reason)


def cellect_monitor() -> list[str]:
    """The console script a user runs (`cellect-monitor`), beside this interpreter."""
    script = Path(sys.executable).with_name("cellect-monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "receiver"]


def start_monitor(
    tmp: Path, args: Sequence[str], env: dict[str, str], *, port: int | None = None
) -> tuple[Child, str]:
    """`cellect-monitor run ARGS` in `tmp` with `env`, healthy; returns it and its target."""
    port = port or free_port()
    argv = [*cellect_monitor(), "run", "--port", str(port), *args]
    monitor = Child.start("monitor", argv, log=tmp / "monitor.log", cwd=tmp, env=env)
    target = f"127.0.0.1:{port}"

    def healthy() -> bool:
        assert monitor.alive(), monitor.tail()
        try:
            return httpx.get(f"http://{target}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, within=60, what="the monitor to listen")
    return monitor, target


def exported(target: str, name: str) -> float | None:
    """The value of the unlabelled series `name` on the monitor's /metrics, if present."""
    for line in httpx.get(f"http://{target}/metrics").text.splitlines():
        metric, _, value = line.partition(" ")
        if metric == name:
            return float(value)
    return None


def start_prometheus(tmp: Path, target: str, rules_text: str) -> tuple[Child, PromApi]:
    """Prometheus scraping `target` every second with `rules_text` loaded, ready."""
    rules, config, port = tmp / "cellect.rules.yml", tmp / "prometheus.yml", free_port()
    rules.write_text(rules_text)
    config.write_text(prometheus_config(target, rules))
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    prometheus = Child.start("prometheus", argv, log=tmp / "prometheus.log", cwd=tmp)
    api = PromApi(f"http://127.0.0.1:{port}")
    try:
        wait_for(api.ready, within=60, what="Prometheus to be ready")
    except AssertionError:
        prometheus.stop()
        raise
    return prometheus, api


# --- what fires ----------------------------------------------------------------------------

Firing = frozenset[tuple[str, str, str | None]]  # (alertname, severity, site_id)


def prometheus_firing(api: PromApi) -> Firing:
    """What fires in Prometheus, as (alertname, severity, site_id or None)."""
    return frozenset((a["alertname"], a["severity"], a.get("site_id")) for a in api.alerts())


class BuiltinAlerts:
    """What fires in a monitor's built-in engine, read from its SQLite database."""

    def __init__(self, database: Path) -> None:
        self.engine = create_engine(f"sqlite:///{database}")

    def firing(self) -> Firing | None:
        """(rule, severity, site_id or None) of every firing alert; None while the database
        cannot be read (the monitor is creating it, or holds a write lock too long)."""
        try:
            with Session(self.engine) as session:
                alerts = firing_alerts(session=session).values()
        except OperationalError:
            return None
        return frozenset((a.rule, a.severity, a.labels.get("site_id")) for a in alerts)

    def ever(self) -> Firing:
        """(rule, severity, site_id or None) of every alert that ever fired, resolved too."""
        with Session(self.engine) as session:
            records = session.exec(select(AlertRecord)).all()
        return frozenset((r.rule, r.severity, r.labels.get("site_id")) for r in records)

    def close(self) -> None:
        self.engine.dispose()


# --- the time-scaled rules ----------------------------------------------------------------


def seconds_of(duration: str) -> float:
    """A Prometheus duration (`1h30m`, `15m`, `0m`) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class EmulatedTime:
    """The monitor's clock: emulated = `anchor` + `speed` × (real − `real_anchor`)."""

    anchor: float
    real_anchor: float
    speed: float

    def promql(self) -> str:
        """A PromQL expression for the emulated "now" (Prometheus' time() is real time)."""
        return f"({self.anchor:.3f} + {self.speed:g} * (time() - {self.real_anchor:.3f}))"


def scale_rules(
    text: str, clock: EmulatedTime, *, hold_speed: float | None = None, min_range_s: float = 5.0
) -> str:
    """The rules file with its timing moved onto the monitor's emulated clock.

    `for:` and range selectors are divided by `hold_speed` (default: the clock's speed;
    ranges no shorter than `min_range_s`, so that rate() still sees a few scrapes), and
    `time()` becomes the emulated now, so rules comparing exported emulated timestamps
    with "now" mean what they mean at speed 1. A monitor on the real clock whose
    thresholds were divided by some factor (through its CELLECT_ settings) takes a
    real-time `clock` (speed 1) and that factor as `hold_speed`.
    """
    speed = clock.speed if hold_speed is None else hold_speed
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = f"{math.ceil(seconds_of(str(rule['for'])) / speed)}s"
            expr = _RANGE.sub(lambda m: _scaled_range(m, speed, min_range_s), rule["expr"])
            rule["expr"] = expr.replace("time()", clock.promql())
    return yaml.safe_dump(document, sort_keys=False)


def _scaled_range(match: re.Match[str], speed: float, floor: float) -> str:
    return f"[{max(math.ceil(seconds_of(match.group(1)) / speed), math.ceil(floor))}s]"


def prometheus_config(target: str, rules: Path, *, interval_s: int = 1) -> str:
    """A Prometheus config scraping `target` every `interval_s` with `rules` loaded."""
    return yaml.safe_dump(
        {
            "global": {
                "scrape_interval": f"{interval_s}s",
                "evaluation_interval": f"{interval_s}s",
            },
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": "cellect-monitor", "static_configs": [{"targets": [target]}]}
            ],
        }
    )


# --- Prometheus' HTTP API -----------------------------------------------------------------


class PromApi:
    """The few calls of Prometheus' HTTP API the tests need."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (a scalar result becomes one sample)."""
        response = self.http.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert response.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self, state: str = "firing") -> list[dict[str, str]]:
        """The labels of every alert in `state` (pending or firing)."""
        response = self.http.get("/api/v1/alerts")
        response.raise_for_status()
        alerts = response.json()["data"]["alerts"]
        return [a["labels"] for a in alerts if a["state"] == state]

    def firing(self, alertname: str, **labels: str) -> dict[str, str] | None:
        """The labels of a firing `alertname` alert carrying `labels`, if there is one."""
        for alert in self.alerts():
            wanted = {"alertname": alertname, **labels}
            if all(alert.get(k) == v for k, v in wanted.items()):
                return alert
        return None

    def wait_firing(self, alertname: str, *, within: float, **labels: str) -> dict[str, str]:
        """Poll (bounded) until such an alert fires; its labels."""
        return wait_for(
            lambda: self.firing(alertname, **labels), within=within, what=f"{alertname} to fire"
        )

    def wait_resolved(self, alertname: str, *, within: float, **labels: str) -> None:
        """Poll (bounded) until no such alert fires any more."""
        wait_for(
            lambda: not self.firing(alertname, **labels),
            within=within,
            what=f"{alertname} to resolve",
        )

    def ready(self) -> bool:
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def evaluated_after(self, moment: float) -> bool:
        """Whether every rule group has been evaluated after `moment` (Unix seconds)."""
        response = self.http.get("/api/v1/rules")
        response.raise_for_status()
        groups = response.json()["data"]["groups"]
        times = [parse_timestamp(group["lastEvaluation"]) for group in groups]
        return bool(groups) and all(t is not None and t.timestamp() > moment for t in times)


# --- the emulator: control API and a partner's own calls ----------------------------------


@dataclass
class Emulator:
    """The demo's emulator over HTTP: its control API and the partner API as partner 1."""

    url: str
    http: httpx.Client = field(init=False)
    _access: str | None = field(default=None, init=False)
    _refresh: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def control(self, method: str, path: str, body: object = None) -> Any:
        response = self.http.request(method, f"/_emulator{path}", json=body)
        assert response.is_success, (method, path, response.status_code, response.text)
        return response.json()

    def now(self) -> datetime:
        now = parse_timestamp(self.control("GET", "/clock")["now"])
        assert now is not None
        return now

    def clock(self) -> EmulatedTime:
        """The emulated clock's anchor, read against real time around the call."""
        before = time.time()
        view = self.control("GET", "/clock")
        real = (before + time.time()) / 2
        now = parse_timestamp(view["now"])
        assert now is not None
        return EmulatedTime(now.timestamp(), real, float(view["speed"]))

    def take_over_trading(self) -> None:
        """Revoke the demo trader's refresh token and expire every access token.

        The trader's token is the one listed with resourceType "demo-trader"; without it
        the trader's steps fail (logged) and post nothing more,
        while the monitor renews its access token with its own refresh token.
        """
        tokens = self.control("GET", "/refresh-tokens")
        [trader] = [t for t in tokens if t["resourceType"] == "demo-trader"]
        assert len(tokens) == 2, tokens  # the trader's and the monitor's
        self.control("DELETE", f"/refresh-tokens/{trader['identifier']}")
        self.control("POST", "/faults", {"expire_tokens": True})

    def _token(self) -> str:
        if self._refresh is None:
            issued = self.control("POST", "/refresh-tokens", {"resourceType": "partner-api"})
            self._refresh = issued["token"]
        if self._access is None:
            auth = {"authorization": f"Bearer {self._refresh}"}
            response = self.http.post(paths.ACCESS_TOKEN, headers=auth)
            assert response.status_code == 200, response.text
            self._access = response.json()["accessToken"]
        return self._access

    def partner(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A partner API call with a (renewed once on 401) access token."""
        for _ in range(2):
            headers = {"authorization": f"Bearer {self._token()}"}
            response = self.http.request(method, path, headers=headers, **kwargs)
            if response.status_code != 401:
                return response
            self._access = None
        return response

    def post_schedule(
        self, site_id: int, power_kw: float, hours: float, *, entries: int = 1
    ) -> datetime:
        """`entries` back-to-back entries of `power_kw` (+ discharge) from 6 min ahead,
        `hours` long in all; returns their start."""
        start = self.now() + timedelta(minutes=6)
        step = timedelta(hours=hours) / entries
        data = [
            {
                "startDate": format_timestamp(start + i * step),
                "endDate": format_timestamp(start + (i + 1) * step),
                "essPowerAC": power_kw,
            }
            for i in range(entries)
        ]
        response = self.partner(
            "POST", paths.time_series(site_id), params={"symbol": "EssPowerAC"}, json={"data": data}
        )
        assert response.is_success, response.text
        return start

    def delete_schedule(self, site_id: int) -> None:
        """Delete every entry of the site that has not started yet."""
        now = self.now()
        window = {"startDate": now, "endDate": now + timedelta(hours=48)}
        params = {k: format_timestamp(v.astimezone(UTC)) for k, v in window.items()}
        response = self.partner("DELETE", paths.time_series(site_id), params=params)
        assert response.is_success, response.text

    def ex_ante(self, site_id: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The site's schedule entries overlapping [start, end), with their statuses."""
        window = {"startDate": start, "endDate": end}
        params = {k: format_timestamp(v.astimezone(UTC)) for k, v in window.items()}
        params["symbol"] = "ExAnteInformationEssPowerAC"
        response = self.partner("GET", paths.time_series(site_id), params=params)
        assert response.is_success, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def box(self, site_id: int, **state: bool) -> None:
        self.control("POST", f"/sites/{site_id}/box", state)

    def outage(self, site_id: int, **body: object) -> None:
        self.control("POST", f"/sites/{site_id}/outages", body)

    def end_outage(self, site_id: int) -> None:
        self.control("DELETE", f"/sites/{site_id}/outages/current")
