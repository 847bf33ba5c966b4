"""docker-compose.yml's demo, checked without Docker: the monitor's command is one the CLI
accepts and runs in real time, the ports it listens on are published on the host's
loopback, Prometheus scrapes the right one, and the README's curls reach them.

The last test runs the compose command itself as a subprocess (the listen addresses and
ports moved to free loopback ones, the database into a tmp dir, the Dockerfile's
CELLECT_ environment given) and sends it each curl of the README.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import posixpath
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from receiver.cli import build_parser
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
_FENCE = re.compile(r"```(?:sh|bash|shell)\n(.*?)```", re.S)
ADMIN_TOKEN_COMMAND = "$(cellect-monitor admin token)"


@dataclass(frozen=True)
class Curl:
    method: str
    url: str
    headers: dict[str, str]
    body: str | None


def _monitor() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]["monitor"]
    return service


def _command() -> list[str]:
    command = _monitor()["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _args() -> argparse.Namespace:
    return build_parser().parse_args(_command())


def _image_env() -> dict[str, str]:
    """The CELLECT_ variables the Dockerfile's ENV sets for the container."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = re.findall(r"(CELLECT_\w+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", text, re.M)))
    return dict(pairs)


def _published() -> dict[int, tuple[str, int]]:
    """Container port → (host address, host port) of the monitor's published ports."""
    published = {}
    for spec in _monitor()["ports"]:
        address, host_port, container_port = str(spec).rsplit(":", 2)
        published[int(container_port)] = (address, int(host_port))
    return published


def _listening_ports() -> dict[str, int]:
    """The container ports the compose command makes the monitor and its emulator use."""
    args = _args()
    port = args.port if args.port is not None else int(_image_env()["CELLECT_PORT"])
    return {"monitor": port, "emulator": args.emulator_port}


def readme_curls() -> list[Curl]:
    """Every curl of the README's shell blocks, continuation lines joined."""
    curls = []
    for block in _FENCE.findall(README.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["curl"]:
                curls.append(
                    _parse_curl(words[1 : words.index("|")] if "|" in words else words[1:])
                )
    return curls


def _parse_curl(words: list[str]) -> Curl:
    method, headers, body, url = "GET", {}, None, ""
    items = iter(words)
    for word in items:
        if word == "-X":
            method = next(items)
        elif word == "-H":
            name, _, value = next(items).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(items)
            method = "POST" if method == "GET" else method
        elif not word.startswith("-"):
            url = word if "://" in word else f"http://{word}"
    return Curl(method, url, headers, body)


def test_compose_command_is_one_the_cli_accepts() -> None:
    """The monitor's compose command parses with the real CLI: the demo, listening on
    every interface of the container, the emulator too."""
    args = _args()
    assert args.command == "run"
    assert args.emulator
    assert ipaddress.ip_address(args.host).is_unspecified
    assert ipaddress.ip_address(args.emulator_host).is_unspecified


def test_compose_demo_runs_in_real_time() -> None:
    """The compose demo runs at --speed 1, so its exported timestamps are Prometheus' time."""
    assert _args().speed == 1


def test_compose_publishes_the_monitor_and_the_emulator_on_loopback() -> None:
    """The ports the monitor and its emulator listen on are published, on 127.0.0.1 only
    (the emulator's control API has no authentication)."""
    published = _published()
    for name, port in _listening_ports().items():
        assert port in published, f"{name} port {port} not published"
        assert published[port][0] == "127.0.0.1", name


def test_compose_prometheus_scrapes_the_monitor_port() -> None:
    """prometheus.yml scrapes the monitor service on the port the monitor listens on."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    assert static["targets"] == [f"monitor:{_listening_ports()['monitor']}"]


def test_readme_curls_target_the_published_ports() -> None:
    """Each curl of the README calls a host port compose publishes, on the host's loopback,
    and the emulator's control API only on the emulator's port."""
    curls = readme_curls()
    assert any("/_emulator/" in c.url for c in curls), "no fault-injection curl in the README"
    host_ports = {host: container for container, (_, host) in _published().items()}
    ports = _listening_ports()
    for curl in curls:
        parts = urlsplit(curl.url)
        assert parts.hostname in ("localhost", "127.0.0.1"), curl.url
        assert parts.port in host_ports, curl.url
        expected = ports["emulator"] if parts.path.startswith("/_emulator/") else ports["monitor"]
        assert host_ports[parts.port] == expected, curl.url


@dataclass(frozen=True)
class _Running:
    emulator: str
    by_host_port: dict[int, str]  # published host port → where the test's run listens
    admin_token: str  # what `cellect-monitor admin token` prints for this run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(probe_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll (bounded) until `probe_url` answers 200."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            if httpx.get(probe_url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{probe_url} did not answer within 60 s")


@pytest.fixture
def compose_demo(tmp_path: Path) -> Iterator[_Running]:
    """The compose command as a subprocess, moved to free loopback ports."""
    port, emulator_port = _free_port(), _free_port()
    argv = [sys.executable, "-m", "receiver", *_command()]
    # Later flags win in argparse: the compose command's own, then the test's moves.
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    argv += ["--emulator-host", "127.0.0.1", "--emulator-port", str(emulator_port)]
    database = ["--database-url", f"sqlite:///{tmp_path}/monitor.db"]
    argv += database
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    env.update(_image_env())
    env.update({str(k): str(v) for k, v in (_monitor().get("environment") or {}).items()})
    log = tmp_path / "monitor.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=sink, stderr=sink)
    try:
        monitor, emulator = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}"
        _wait(monitor + "/healthz", process, log)
        _wait(emulator + "/_emulator/clock", process, log)
        published, ports = _published(), _listening_ports()
        host_port = {name: published[port][1] for name, port in ports.items()}
        token = subprocess.run(
            [sys.executable, "-m", "receiver", "admin", "token", *database],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        by_host_port = {host_port["monitor"]: monitor, host_port["emulator"]: emulator}
        yield _Running(emulator, by_host_port, token)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_compose_command_serves_the_readme_curls_in_real_time(
    compose_demo: _Running,
) -> None:
    """Run as compose runs it, the demo's emulated clock runs at speed 1 and every README
    curl (metrics, readiness, a box cut off, an outage, the operator API with the token
    `cellect-monitor admin token` prints) is answered with success."""
    clock = httpx.get(compose_demo.emulator + "/_emulator/clock", timeout=5).json()
    assert clock["speed"] == 1
    for curl in readme_curls():
        parts = urlsplit(curl.url)
        assert parts.port is not None
        target = compose_demo.by_host_port[parts.port] + parts.path
        if parts.query:
            target += "?" + parts.query
        body = json.loads(curl.body) if curl.body else None
        headers = {
            name: value.replace(ADMIN_TOKEN_COMMAND, compose_demo.admin_token)
            for name, value in curl.headers.items()
        }
        response = httpx.request(curl.method, target, json=body, headers=headers, timeout=10)
        assert response.is_success, (curl, response.status_code, response.text)


# --- the `replicas` profile: several monitors on one PostgreSQL, behind HAProxy ------------

REPLICAS = ("monitor-1", "monitor-2")
REPLICA_PROFILE = {"postgres", "emulator", *REPLICAS, "balancer", "prometheus-replicas"}
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
REPLICAS_PROMETHEUS = ROOT / "prometheus" / "prometheus.replicas.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _replica_port() -> int:
    """The port a replica listens on in its container: no --port, so the image's."""
    args = build_parser().parse_args(_argv(_services()[REPLICAS[0]]))
    return args.port if args.port is not None else int(_image_env()["CELLECT_PORT"])


def _host_port(spec: str) -> tuple[str, int, int]:
    address, host_port, container_port = str(spec).rsplit(":", 2)
    return address, int(host_port), int(container_port)


def _haproxy_servers() -> list[tuple[str, str, int]]:
    """(name, host, port) of every `server` line of deploy/haproxy.cfg."""
    found = re.findall(r"^\s*server\s+(\S+)\s+([^\s:]+):(\d+)", HAPROXY_CONFIG.read_text(), re.M)
    return [(name, host, int(port)) for name, host, port in found]


def _haproxy_bind_port() -> int:
    (port,) = re.findall(r"^\s*bind\s+\S*:(\d+)\s*$", HAPROXY_CONFIG.read_text(), re.M)
    return int(port)


def test_the_replicas_profile_starts_only_when_asked() -> None:
    """The profile's services (PostgreSQL, the emulator, two monitors, the balancer and a
    Prometheus) carry the profile `replicas`: `docker compose up` alone starts none."""
    profiled = {name for name, s in _services().items() if "replicas" in s.get("profiles", [])}
    assert profiled == REPLICA_PROFILE


def test_the_replicas_run_the_monitor_on_one_database_and_one_secret() -> None:
    """Both replicas run `cellect-monitor run` (no embedded emulator) with the same
    settings: the same PostgreSQL URL, naming the profile's PostgreSQL service and its
    database, and the same webhook secret and Cellect account."""
    services = _services()
    environments = [services[name]["environment"] for name in REPLICAS]
    for name in REPLICAS:
        args = build_parser().parse_args(_argv(services[name]))
        assert args.command == "run"
        assert not args.emulator
        assert args.database_url is None  # CELLECT_DATABASE_URL decides
    assert environments[0] == environments[1]
    environment = environments[0]
    url = urlsplit(environment["CELLECT_DATABASE_URL"])
    assert url.scheme.startswith("postgresql")
    postgres = services["postgres"]["environment"]
    assert url.hostname == "postgres"
    assert (url.username, url.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert url.path == "/" + postgres["POSTGRES_DB"]
    assert environment["CELLECT_WEBHOOK_SECRET"]


def test_the_replicas_poll_the_standalone_emulator_with_its_token() -> None:
    """The replicas' API and token URLs name the emulator service on the port its command
    listens on (every interface of its container), with the refresh token it issues; its
    control API is published on the host's loopback only."""
    services = _services()
    emulator = build_parser().parse_args(_argv(services["emulator"]))
    assert emulator.command == "emulator"
    assert ipaddress.ip_address(emulator.host).is_unspecified
    environment = services[REPLICAS[0]]["environment"]
    for variable in ("CELLECT_API_URL", "CELLECT_TOKEN_URL"):
        url = urlsplit(environment[variable])
        assert (url.hostname, url.port) == ("emulator", emulator.port), variable
    assert environment["CELLECT_REFRESH_TOKEN"] == emulator.refresh_token
    published = [_host_port(spec) for spec in services["emulator"]["ports"]]
    assert [(a, c) for a, _, c in published] == [("127.0.0.1", emulator.port)]


def test_webhooks_reach_the_replicas_through_the_balancer_with_their_secret() -> None:
    """The emulator sends its webhooks to the balancer's frontend, with the replicas'
    secret as the URL's token; the balancer is published on loopback and is the one proxy
    whose X-Forwarded-For the replicas believe (its fixed address on the profile's network)."""
    services = _services()
    emulator = build_parser().parse_args(_argv(services["emulator"]))
    hook = urlsplit(emulator.webhook_url)
    assert (hook.hostname, hook.port, hook.path) == (
        "balancer",
        _haproxy_bind_port(),
        "/webhooks/time-series",
    )
    environment = services[REPLICAS[0]]["environment"]
    assert f"token={environment['CELLECT_WEBHOOK_SECRET']}" == hook.query
    balancer = services["balancer"]
    published = [_host_port(spec) for spec in balancer["ports"]]
    assert [(a, c) for a, _, c in published] == [("127.0.0.1", _haproxy_bind_port())]
    address = balancer["networks"]["replicas"]["ipv4_address"]
    assert environment["CELLECT_FORWARDED_ALLOW_IPS"] == address
    subnet = yaml.safe_load(COMPOSE.read_text())["networks"]["replicas"]["ipam"]["config"][0]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet["subnet"])


def test_the_balancer_config_names_both_replicas() -> None:
    """The balancer mounts deploy/haproxy.cfg, whose backend names each replica service
    on the port it listens on, health-checked on /healthz."""
    balancer = _services()["balancer"]
    mounted = {target: (ROOT / source).resolve() for source, target in _bind_mounts(balancer)}
    assert mounted == {"/usr/local/etc/haproxy/haproxy.cfg": HAPROXY_CONFIG.resolve()}
    servers = _haproxy_servers()
    assert sorted(host for _, host, _ in servers) == sorted(REPLICAS)
    assert {port for _, _, port in servers} == {_replica_port()}
    assert "option httpchk GET /healthz" in HAPROXY_CONFIG.read_text()


def test_haproxy_accepts_the_balancer_config() -> None:
    """`haproxy -c` accepts deploy/haproxy.cfg (names it cannot resolve here are warnings)."""
    haproxy = require_tool("haproxy", "haproxy")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_replicas_prometheus_scrapes_both_under_one_job() -> None:
    """The profile's Prometheus reads prometheus/prometheus.replicas.yml, which scrapes both
    replicas directly (not through the balancer) on their port, under the job MonitorDown
    names, and loads the alert rules."""
    service = _services()["prometheus-replicas"]
    flags = dict(arg.split("=", 1) for arg in _argv(service) if "=" in arg)
    config_in_container = flags["--config.file"]
    assert _on_host(service, config_in_container) == REPLICAS_PROMETHEUS
    config = yaml.safe_load(REPLICAS_PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "cellect-monitor"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert sorted(targets) == sorted(f"{name}:{_replica_port()}" for name in REPLICAS)
    (rule_file,) = config["rule_files"]
    in_container = posixpath.normpath(
        posixpath.join(posixpath.dirname(config_in_container), rule_file)
    )
    assert _on_host(service, in_container) == (ROOT / "alerts" / "cellect.rules.yml").resolve()


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(repository path, container path) of a service's bind mounts (short syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts.append((source, target))
    return mounts


def _on_host(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path of the service is mounted from, if any."""
    for source, target in _bind_mounts(service):
        if container_path.startswith(target.rstrip("/") + "/"):
            return (ROOT / source / posixpath.relpath(container_path, target)).resolve()
    return None
