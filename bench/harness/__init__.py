"""What every bench script shares: the product started through its console script, the
bare baselines served by uvicorn[standard], wrk (or a small asyncio generator when wrk
is missing), percentiles and the memory of a process read from /proc.

Nothing here imports the monitor's modules: the product is run as a user runs it
(`cellect-monitor run`, `cellect-monitor emulator`, configured by CELLECT_* variables)
and measured over HTTP. Only `receiver.cellect` (the vendor contract) may be imported
by a bench script.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

BIN = Path(sys.executable).parent
CLI = BIN / "cellect-monitor"
UVICORN = BIN / "uvicorn"
HERE = Path(__file__).resolve().parent
BENCH = HERE.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any CELLECT_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    env.update(extra)
    return env


@dataclass
class Server:
    """A server process started by a bench, its log file and its base URL."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    started: float = field(default_factory=time.perf_counter)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_http(self, path: str, within: float = 60.0, status: int = 200) -> float:
        """Poll GET `path` until it answers `status`; the seconds since the start."""
        deadline = time.monotonic() + within
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"{self.name} exited with {self.process.returncode}:\n"
                                     f"{self.tail()}")  # fmt: skip
                try:
                    if http.get(self.url + path).status_code == status:
                        return time.perf_counter() - self.started
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        raise SystemExit(f"{self.name}: {path} not {status} within {within:.0f} s\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start(
    name: str, command: Sequence[str | Path], env: Mapping[str, str], url: str, logdir: Path
) -> Server:
    """Start `command` (its output to a log file, never a pipe nobody reads)."""
    log = logdir / f"{name}.log"
    out: IO[bytes] = log.open("wb")
    began = time.perf_counter()
    process = subprocess.Popen([str(c) for c in command], env=dict(env), stdout=out, stderr=out)
    out.close()
    return Server(name, process, url, log, began)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


def monitor(
    logdir: Path,
    env: Mapping[str, str],
    *args: str,
    port: int | None = None,
    name: str = "monitor",
) -> Server:
    """`cellect-monitor run ARGS`, configured by `env` (CELLECT_* variables); its log is
    `logdir/NAME.log` (several monitors side by side: a name each)."""
    port = port or free_port()
    full = clean_env({**env, "CELLECT_PORT": str(port)})
    return start(name, [CLI, "run", *args], full, f"http://127.0.0.1:{port}", logdir)


def emulator(logdir: Path, *args: str, port: int | None = None) -> Server:
    """`cellect-monitor emulator --port P ARGS`."""
    port = port or free_port()
    command = [CLI, "emulator", "--port", str(port), *args]
    return start("emulator", command, clean_env({}), f"http://127.0.0.1:{port}", logdir)


def bare_server(
    logdir: Path, app: str, env: Mapping[str, str] | None = None, *extra: str
) -> Server:
    """A bare ASGI app of bench/harness served by uvicorn[standard] from its own CLI."""
    port = free_port()
    command = [
        UVICORN, app, "--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        *extra,
    ]  # fmt: skip
    name = app.split(":")[-1]
    return start(name, command, clean_env(env or {}), f"http://127.0.0.1:{port}", logdir)


def writer_children(pid: int) -> list[int]:
    """The child processes of `pid` (the monitor's webhook writer, its emulator)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in task.read_text().split()]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def memory_mb(pid: int, key: str = "VmHWM") -> float:
    """VmHWM (peak RSS) or VmRSS of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- load generation ---------------------------------------------------------------------


@dataclass
class Load:
    """One load run: completed requests, their rate, 2xx count, latency percentiles (s)."""

    tool: str
    requests: int
    seconds: float
    non_2xx: int
    errors: int
    p50: float
    p90: float
    p99: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    def line(self) -> str:
        return (f"{self.rate:8.0f} req/s, p50 {self.p50 * 1e3:6.2f} ms, p90 "
                f"{self.p90 * 1e3:6.2f} ms, p99 {self.p99 * 1e3:6.2f} ms, "
                f"non-2xx {self.non_2xx}, socket errors {self.errors}")  # fmt: skip


def has_wrk() -> bool:
    return shutil.which("wrk") is not None


_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    timeout_s: float = 10.0,
) -> Load:
    """Run `wrk --latency` and parse its summary."""
    command = [
        "wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
        f"--timeout={timeout_s:g}s",
    ]  # fmt: skip
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    percent = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.MULTILINE))
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if not total or not percent:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(
        tool="wrk",
        requests=int(total.group(1)),
        seconds=_duration(total.group(2) + total.group(3)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        p50=_duration(percent["50"]),
        p90=_duration(percent["90"]),
        p99=_duration(percent["99"]),
    )


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _asyncio_load(
    host: str, port: int, requests: Iterator[bytes], seconds: float, connections: int
) -> Load:
    latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}

    async def connection(stop_at: float) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at:
                writer.write(next(requests))
                sent = time.perf_counter()
                try:
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    counts["errors"] += 1
                    return
                latencies.append(time.perf_counter() - sent)
                if not 200 <= status < 300:
                    counts["non_2xx"] += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection(began + seconds) for _ in range(connections)))
    elapsed = time.perf_counter() - began
    return Load(
        "asyncio generator", len(latencies), elapsed, counts["non_2xx"], counts["errors"],
        percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99),
    )  # fmt: skip


def asyncio_load(url: str, requests: Iterator[bytes], *, seconds: float, connections: int) -> Load:
    """The fallback generator: keep-alive HTTP/1.1 on raw streams, `requests` yields the
    bytes of each request (all connections draw from it)."""
    parts = httpx.URL(url)
    return asyncio.run(_asyncio_load(parts.host, parts.port or 80, requests, seconds, connections))


# --- webhook deliveries --------------------------------------------------------------------

WEBHOOK_LUA = HERE / "webhooks.lua"
SLOT_S = 900


def webhook_base(now: float | None = None) -> int:
    """The first 15-minute boundary at least 10 minutes ahead of `now` (epoch seconds)."""
    now = time.time() if now is None else now
    return int((now + 600) // SLOT_S + 1) * SLOT_S


def webhook_deliveries(path: str, sites: int, entries: int, base: int, run: int) -> Iterator[bytes]:
    """The requests harness/webhooks.lua sends, for the asyncio generator (one thread)."""
    groups = 188 // entries
    k = 0
    while True:
        site, step = k % sites + 1, k // sites
        group, phase = divmod(step, 3)
        if phase == 0:
            status = 1
        elif phase == 2:
            status = 4
        else:
            status = 3 if (site * 7 + group) % 40 == 0 else 2
        first = base + run + (group % groups) * entries * SLOT_S + group // groups
        schedule = ",".join(
            f'{{"start":"{_ts(first + i * SLOT_S)}","end":"{_ts(first + (i + 1) * SLOT_S)}",'
            f'"status":{status}}}'
            for i in range(entries)
        )
        body = f'{{"siteId":{site},"schedule":[{schedule}]}}'.encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        yield head + body
        k += 1


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def webhook_load(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    sites: int,
    entries: int,
    base: int,
    run: int,
    force_asyncio: bool = False,
) -> Load:
    """POST distinct deliveries to `url` (path and query included) for `seconds`."""
    if has_wrk() and not force_asyncio:
        args = [str(sites), str(entries), str(base), str(run)]
        return wrk(url, seconds=seconds, connections=connections, threads=threads,
                   script=WEBHOOK_LUA, script_args=args)  # fmt: skip
    parts = httpx.URL(url)
    target = parts.raw_path.decode()
    requests = webhook_deliveries(target, sites, entries, base, run)
    return asyncio_load(url, requests, seconds=seconds, connections=connections)


def busy_elsewhere(exclude: Sequence[int] = ()) -> str:
    """A line on the CPU other processes take (the load generator shares 2 cores with the
    servers: a test run beside the bench skews it). Samples /proc for 0.5 s."""

    def ticks() -> dict[int, tuple[str, int]]:
        found: dict[int, tuple[str, int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = stat.read_text()
                name = text[text.index("(") + 1 : text.rindex(")")]
                fields = text[text.rindex(")") + 2 :].split()
                found[int(stat.parent.name)] = (name, int(fields[11]) + int(fields[12]))
        return found

    before = ticks()
    time.sleep(0.5)
    after = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    skip = {os.getpid(), *exclude}
    busy = sorted(
        ((after[p][1] - before[p][1]) / hz / 0.5, after[p][0], p)
        for p in after
        if p in before and p not in skip
    )
    top = [f"{name}[{pid}] {share:.0%}" for share, name, pid in reversed(busy) if share >= 0.1]
    load = Path("/proc/loadavg").read_text().split()[0]
    return f"load average {load}; other busy processes: {', '.join(top) or 'none'}"


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the `finally`s: the servers started are stopped


signal.signal(signal.SIGTERM, _terminated)


def http_request(
    method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _send_all(host: str, port: int, requests: Sequence[bytes], connections: int) -> list[int]:
    statuses = [0] * len(requests)
    queue = iter(range(len(requests)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in queue:
                writer.write(requests[index])
                statuses[index] = await _read_response(reader)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return statuses


def send_all(url: str, requests: Sequence[bytes], connections: int = 8) -> list[int]:
    """Send every request (at most `connections` at once, keep-alive); their statuses."""
    parts = httpx.URL(url)
    return asyncio.run(_send_all(parts.host, parts.port or 80, requests, connections))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used (from /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
