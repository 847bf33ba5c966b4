"""A real HAProxy in front of several monitors, on loopback, as a partner would run one.

    with Balancer(tmp_path, [m.port for m in monitors]) as balancer:
        await balancer.wait_for_state("m0", "UP")
        httpx.post(balancer.url + "/webhooks/time-series", …)

HAProxy runs in the foreground (`-db`) as a child of the test, its configuration and its
log (one line per request, `option httplog`) in the test's directory; a second listener
serves its statistics as CSV, which is how a test learns what HAProxy believes of each
backend (UP/DOWN) and how many requests it retried. The backends are named m0, m1, … in
the order given. Every wait is bounded; `stop()` (also on leaving the `with`) ends it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.product import free_port
from tests.support.tools import require_tool

# Why each setting (the ones that decide what a client sees while a backend restarts):
#
# - `option httpchk GET /healthz` every 200 ms, down after 2 failures, up after 2
#   successes: a backend that stops listening leaves the rotation within ~0.5 s, and one
#   that starts again joins it once it answers /healthz, i.e. once its lifespan started
#   (the monitor listens only then).
# - `retries 3` + `option redispatch 1`: each retry goes to another backend than the
#   last one (HAProxy avoids the one that failed), so a backend that refuses
#   connections — stopped, or killed and not yet marked down — costs a retry, not an
#   error.
# - `retry-on conn-failure empty-response 503`. Retrying a POST is only safe because the
#   webhook endpoint is idempotent: a delivery is stored once by its content's digest
#   (`INSERT … ON CONFLICT (digest) DO NOTHING`, any replica, any order), and a repeat is
#   acknowledged as a duplicate. So each of these may be sent again to another replica:
#     conn-failure    the request never reached a backend (refused while it restarts);
#     empty-response  the request was sent, nothing came back: the backend closed an idle
#                     keep-alive connection as it shut down, or died (kill -9) with the
#                     request in flight — it may or may not have committed it, and the
#                     retry is then acknowledged as a duplicate;
#     503             the monitor's own "busy / shutting down / not stored in time; retry".
#   Not retried: a response timeout (the request may still be committing; retrying
#   would pile load on a slow database — the client retries later instead), junk
#   responses (a broken backend, not a transient state), and every other status (4xx
#   are the client's fault and would fail again).
#   HAProxy keeps a copy of the request for these retries only if it fits its buffer
#   (tune.bufsize, 16 KiB by default; a delivery is a few hundred bytes to a few KiB).
# - `option http-buffer-request`: wait for the whole body before picking a backend.
#   Without it HAProxy may forward the headers before the body has arrived (clients
#   write them separately); a request not held whole cannot be replayed, and when its
#   backend died HAProxy closed the client's keep-alive connection without an answer or
#   a log line (HTTP/1.1's "the client may retry" signal) — seen in about every other
#   kill -9 of a replica under load. Buffered, the same kill is retried elsewhere.
CONFIG = """\
global
    log stdout format raw local0 info
    maxconn 512

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
    option http-buffer-request

frontend webhooks
    bind 127.0.0.1:{port}
    default_backend monitors

backend monitors
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 200ms fall 2 rise 2
{servers}

listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


@dataclass(frozen=True)
class ServerStats:
    """What HAProxy's statistics say of one backend server (or the backend, "BACKEND")."""

    name: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (going up), MAINT, …
    retries: int  # wretr: requests retried (to this server or away from it)
    redispatches: int  # wredis
    responses_5xx: int  # hrsp_5xx: 5xx answers sent (the backend's own or HAProxy's)
    total: int  # stot: sessions handled


class Balancer:
    """One HAProxy child process; see the module docstring."""

    def __init__(self, workdir: Path, backend_ports: Sequence[int]) -> None:
        self.haproxy = require_tool("haproxy", package="haproxy")
        self.workdir = workdir
        self.port = free_port()
        self.stats_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats_url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        self.names = [f"m{i}" for i in range(len(backend_ports))]
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port}"
            for name, port in zip(self.names, backend_ports, strict=True)
        )
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            CONFIG.format(port=self.port, stats_port=self.stats_port, servers=servers)
        )
        self.log = workdir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Balancer:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, within: float = 10.0) -> None:
        """Check the configuration, start HAProxy and wait (bounded) for its statistics."""
        checked = subprocess.run(
            [self.haproxy, "-c", "-q", "-f", str(self.config)],
            capture_output=True,
            text=True,
            timeout=within,
        )
        if checked.returncode != 0:
            raise AssertionError(f"haproxy refuses its configuration:\n{checked.stderr}")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.haproxy, "-db", "-f", str(self.config)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"haproxy exited at start:\n{self.tail()}")
            try:
                self.stats()
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"haproxy did not serve its statistics within {within} s")

    def stop(self, within: float = 10.0) -> None:
        """End HAProxy (SIGTERM: a hard stop, which is what a test wants), SIGKILL if it
        lingers; never raises for a process already gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=within)

    def stats(self) -> dict[str, ServerStats]:
        """The backend's servers (and "BACKEND", its totals) as HAProxy sees them now."""
        text = httpx.get(self.stats_url, timeout=5.0).raise_for_status().text
        rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
        return {
            row["svname"]: ServerStats(
                row["svname"],
                row["status"],
                int(row["wretr"] or 0),
                int(row["wredis"] or 0),
                int(row["hrsp_5xx"] or 0),
                int(row["stot"] or 0),
            )
            for row in rows
            if row["pxname"] == "monitors"
        }

    async def wait_for_state(self, name: str, status: str, within: float = 15.0) -> float:
        """Wait (bounded) until HAProxy reports backend `name` in `status` (UP, DOWN);
        the seconds it took."""
        started = time.monotonic()
        seen = ""
        while time.monotonic() - started < within:
            seen = (await asyncio.to_thread(self.stats))[name].status
            if seen == status:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise AssertionError(f"haproxy saw {name} {seen!r}, not {status}, for {within} s")

    async def wait_all_up(self, within: float = 15.0) -> None:
        for name in self.names:
            await self.wait_for_state(name, "UP", within)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])
