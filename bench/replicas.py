"""Benchmark: one poll cycle of 1, 2 and 3 replicas of `cellect-monitor run` on one
PostgreSQL over a 30,000-site emulator — requests/s and cycle time per replica count, the
emulator's raw capacity measured in the same run, and every site polled exactly once.

The emulator: `cellect-monitor emulator --sites 30000 --speed 1 --refresh-token T` in a
process of its own (real time), started once for the whole run. Against it:

(a) raw capacity: bench/poll.py's raw baseline, unchanged (`poll.raw_round`): in this
    process, on uvloop, one httpx.AsyncClient firing PortfolioOverview and the three
    per-site streams of a round (availability events, ExAnte, ExPost) over every site,
    at most 16 in flight per stream, all at once; requests/s of the whole round. It runs
    first, which also warms the emulator.
(b) for N in 1, 2, 3, on a fresh PostgreSQL database each (`CREATE DATABASE
    cellect_bench_replicas_…`, dropped at the end even on failure): every replica is a
    `cellect-monitor run` configured as the README tells a user — CELLECT_DATABASE_URL
    (postgresql://…), CELLECT_API_URL / CELLECT_TOKEN_URL at the emulator,
    CELLECT_REFRESH_TOKEN, a port each, every poll interval 3600 s (one round each in
    the measurement), CELLECT_POLL_CONCURRENCY 16, lease TTL and renewal at their
    defaults (15 s, 5 s). A first replica alone learns the sites (its portfolio round)
    and is stopped (gracefully: its leases and registry row go). Then the N replicas
    start at once on that database: each registers, takes its fair share of the 256
    buckets in its first lease round — before its pollers start — and its four pollers
    start their rounds together with its lifespan, just before it first answers
    /healthz (as bench/poll.py relies on). The replica holding the `portfolio` lease
    makes the one PortfolioOverview call; each polls events, ExAnte and ExPost of the
    sites of its buckets only.

What is read, per replica: the buckets it holds (the `leases` table, right after every
replica answered /healthz and again after the cycle; `cellect_leases_held{kind}` and
`cellect_lease_changes_total` from one /metrics scrape after the cycle — no scrape
during it: at 30,000 sites the exposition is ~500,000 lines, which would load the
replicas being measured), its cycle time (from its first /healthz 200 to the latest
`last_success` of its per-site pollers in /readyz, read every 0.5 s), the requests it
made per endpoint and code (`cellect_api_requests_total`: its counters start at 0 with
the process and the cycle is its first round, so the values after the cycle are the
cycle's), its CPU seconds during the cycle and its peak memory (VmHWM, /proc).

Checks, PASS/FAIL, exit 1 on FAIL:
- no duplicate or skipped polls: for each per-site endpoint, every replica's successful
  requests equal the number of sites in the buckets it held (from the `leases` table,
  the same before and after the cycle, with no lease released or lost), and their sum
  equals the number of sites. The counters are per endpoint, not per site: a replica
  that polled one site outside its buckets *and* skipped one of its own would pass; the
  per-replica equality narrows a miss to exactly that, which counters cannot see.
- the work divides evenly: each replica's share of the per-site requests is within
  ±15 % of 1/N (the buckets hold unequal numbers of sites).
Requests/s and cycle times are printed, not held to a target: on this 2-core machine
the emulator (one process) and the N replicas (each with its webhook writer) share the
same two cores, so total throughput cannot grow with N here — the point is the even
division of the work and no duplicates. The load average and the other busy processes
are printed before each phase.

    .venv/bin/python bench/replicas.py [--sites 30000] [--replicas 1,2,3] [--timeout 600]

The replicas and the emulator are started through the venv's console script and inherit
the environment: to measure another checkout than the one installed, run from it with
`PYTHONPATH=$PWD` (the bench prints whose code it ran). `--sites 3000` takes ~2.5 min.

What was seen (docs/performance.md, "Replicas"), at 30,000 sites on this 2-core machine
while other sessions loaded it (load average 3-9; 14 min 53 s for the whole run): every
site polled exactly once per stream with 1, 2 and 3 replicas, the buckets 256, 128/128,
86/85/85, the requests shared 1.000; 1.005/0.995; 1.007/1.012/0.982 of 1/N. Cycle (the
slowest replica) 255.6 s = 352 req/s with one replica, 136.8 s = 658 req/s with two,
189.7 s = 475 req/s with three, against the raw client's 384 req/s (234.4 s). The
replicas spent ~2 ms of CPU per request whatever N (181, 173, 206 CPU seconds in all);
one replica used 0.7 of a core, so the second replica's gain is a second process's
share of a contended machine plus a second set of 16 requests in flight per stream,
not capacity this machine has to spare; the third only added contention. The replica
holding the `portfolio` lease (the PortfolioOverview of 30,000 sites, stored and
published to the others) was the slowest each time: 136.6 s against 127.7 s with two,
189.6 s against 157.3 and 164.3 s with three.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import httpx
import poll
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

import receiver.cellect

REFRESH_TOKEN = "bench-refresh-token-0001"
COUNTS = (1, 2, 3)
BUCKETS = 256
SHARE_TOLERANCE = 0.15
INTERVAL_S = 3600.0  # one round each in the measurement
CONCURRENCY = poll.CONCURRENCY
STREAMS = poll.STREAMS
ENDPOINT_OF = {"events": "availability", "ex_ante": "ex_ante", "ex_post": "ex_post"}
POSTGRES_URL = os.environ.get(
    "CELLECT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
WANTED = (
    "cellect_api_requests_total",
    "cellect_leases_held",
    "cellect_lease_changes_total",
    "cellect_replica_info",
)


def bucket_of(site_id: int) -> int:
    """receiver.coordination.buckets.bucket_of restated (a bench imports only the vendor
    contract): BLAKE2b (8 bytes) of the id's decimal text, big-endian, modulo 256."""
    digest = hashlib.blake2b(str(site_id).encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


# --- the database ----------------------------------------------------------------------


@contextmanager
def fresh_database() -> Iterator[tuple[str, Engine]]:
    """A new database on the server (its URL as a user writes it, and an engine of ours
    on it for reading the leases), dropped on exit whatever happened."""
    name = f"cellect_bench_replicas_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(POSTGRES_URL).set(database=name)
        engine = create_engine(url, pool_size=1)
        try:
            yield url.set(drivername="postgresql").render_as_string(hide_password=False), engine
        finally:
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def lease_owners(engine: Engine) -> dict[str, frozenset[int]]:
    """Replica id → the poll buckets it holds unexpired, read from the `leases` table."""
    query = text(
        "SELECT owner, bucket FROM leases WHERE kind = 'poll' AND owner IS NOT NULL "
        "AND expires_at > clock_timestamp()"
    )
    owners: dict[str, set[int]] = {}
    with engine.connect() as connection:
        for owner, bucket in connection.execute(query):
            owners.setdefault(owner, set()).add(bucket)
    return {owner: frozenset(buckets) for owner, buckets in owners.items()}


def replica_pids(engine: Engine) -> dict[int, str]:
    """Process id → replica id, from the `replicas` registry."""
    with engine.connect() as connection:
        return {pid: rid for rid, pid in connection.execute(text("SELECT id, pid FROM replicas"))}


# --- the replicas ----------------------------------------------------------------------


@dataclass
class Replica:
    """One replica's cycle, as measured."""

    name: str
    server: h.Server
    started: float = 0.0  # wall clock of its first /healthz 200: its rounds start then
    cpu_at_start: float = 0.0
    replica_id: str = ""
    buckets: frozenset[int] = frozenset()
    sites: int = 0  # in its buckets
    ended: dict[str, float] = field(default_factory=dict)  # poller → last_success
    requests: dict[str, dict[str, float]] = field(default_factory=dict)  # endpoint → code → n
    held: dict[str, float] = field(default_factory=dict)
    changes: dict[str, float] = field(default_factory=dict)  # "kind change" → n
    cpu_s: float = 0.0
    peak_mb: float = 0.0  # VmHWM after the cycle

    @property
    def cycle_s(self) -> float:
        return max(self.ended[s] for s in STREAMS) - self.started

    def answered(self, stream: str) -> int:
        return int(self.requests.get(ENDPOINT_OF[stream], {}).get("200", 0))

    @property
    def per_site(self) -> int:
        return sum(self.answered(s) for s in STREAMS)

    def not_200(self) -> dict[str, float]:
        return {
            f"{endpoint} {code}": n
            for endpoint, codes in self.requests.items()
            for code, n in codes.items()
            if code != "200" and n
        }


def replica_env(database_url: str, emulator_url: str) -> dict[str, str]:
    """How the README configures a monitor: CELLECT_* variables."""
    env = {
        "CELLECT_DATABASE_URL": database_url,
        "CELLECT_API_URL": emulator_url,
        "CELLECT_TOKEN_URL": emulator_url,
        "CELLECT_REFRESH_TOKEN": REFRESH_TOKEN,
        "CELLECT_POLL_CONCURRENCY": str(CONCURRENCY),
    }
    for poller in ("portfolio", *STREAMS):
        env[f"CELLECT_{poller.upper()}_INTERVAL_S"] = str(INTERVAL_S)
    return env


def readyz(http: httpx.Client, server: h.Server) -> dict[str, Any]:
    pollers: dict[str, Any] = http.get(server.url + "/readyz").json()["pollers"]
    return pollers


def learn_sites(logdir: Path, env: dict[str, str]) -> float:
    """A first replica alone learns the sites (its portfolio round) and stops; seconds."""
    began = time.perf_counter()
    server = h.monitor(logdir, env, name="learner")
    with h.running(server), httpx.Client(timeout=10) as http:
        server.wait_http("/healthz", within=120)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if readyz(http, server)["portfolio"]["last_success"]:
                return time.perf_counter() - began
            time.sleep(0.2)
    raise SystemExit(f"the portfolio poller did not succeed within 300 s\n{server.tail()}")


def wait_started(replicas: list[Replica]) -> None:
    """Each replica's first /healthz 200, waited for side by side (its rounds start then)."""

    def wait(replica: Replica) -> None:
        replica.server.wait_http("/healthz", within=180)
        replica.started = time.time()
        replica.cpu_at_start = h.cpu_seconds(replica.server.pid)

    with ThreadPoolExecutor(len(replicas)) as pool:
        list(pool.map(wait, replicas))


def wait_cycle(replicas: list[Replica], within: float) -> None:
    """Until every replica's per-site pollers have ended their first round (last_success
    in /readyz, every 0.5 s); a round that failed ends the bench (it runs once an hour)."""
    deadline = time.monotonic() + within
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < deadline:
            pending = False
            for replica in replicas:
                pollers = readyz(http, replica.server)
                for stream in STREAMS:
                    state = pollers[stream]
                    if state["last_success"]:
                        ended = datetime.fromisoformat(state["last_success"]).timestamp()
                        replica.ended.setdefault(stream, ended)
                    elif state["last_error"]:
                        failed = f"{replica.name} {stream} round failed: {state['last_error']}"
                        raise SystemExit(f"{failed}\n{replica.server.tail()}")
                    else:
                        pending = True
            if not pending:
                return
            time.sleep(0.5)
    raise SystemExit(f"the replicas' rounds did not all end within {within:.0f} s")


def scrape(replica: Replica, http: httpx.Client) -> None:
    """The replica's counters and leases, from one /metrics scrape after the cycle."""
    body = http.get(replica.server.url + "/metrics").text
    # Only the lines needed: the site series (~17 a site) would take seconds to parse.
    lines = "\n".join(line for line in body.splitlines() if line.startswith(WANTED))
    for family in text_string_to_metric_families(lines + "\n"):
        for s in family.samples:
            if s.name == "cellect_api_requests_total":
                codes = replica.requests.setdefault(s.labels["endpoint"], {})
                codes[s.labels["code"]] = codes.get(s.labels["code"], 0) + s.value
            elif s.name == "cellect_leases_held":
                replica.held[s.labels["kind"]] = s.value
            elif s.name == "cellect_lease_changes_total":
                replica.changes[f"{s.labels['kind']} {s.labels['change']}"] = s.value
            elif s.name == "cellect_replica_info":
                replica.replica_id = s.labels["replica_id"]


@dataclass
class Cycle:
    """One replica count's measurement."""

    n: int
    replicas: list[Replica]
    startup_s: float  # launch to every /healthz 200
    learn_s: float
    emulator_cpu_s: float
    moved: list[str]  # what says the buckets moved during the cycle (empty: they did not)
    load: str

    @property
    def window_s(self) -> float:
        """From the first replica's start to the last replica's last round's end."""
        ends = [max(r.ended[s] for s in STREAMS) for r in self.replicas]
        return max(ends) - min(r.started for r in self.replicas)

    @property
    def requests(self) -> int:
        return sum(r.per_site for r in self.replicas)

    @property
    def rate(self) -> float:
        return self.requests / self.window_s


def measure(n: int, logdir: Path, emulator: h.Server, timeout: float, sites: int) -> Cycle:
    """N replicas on a fresh database: one cycle, see the module docstring."""
    with fresh_database() as (url, engine):
        env = replica_env(url, emulator.url)
        learn_s = learn_sites(logdir, env)
        load = h.busy_elsewhere(exclude=[emulator.pid])
        emulator_cpu = h.cpu_seconds(emulator.pid)
        launched = time.perf_counter()
        servers = [h.monitor(logdir, env, name=f"n{n}-replica{i + 1}") for i in range(n)]
        replicas = [Replica(s.name, s) for s in servers]
        with h.running(*servers):
            wait_started(replicas)
            startup_s = time.perf_counter() - launched
            at_start = lease_owners(engine)
            wait_cycle(replicas, timeout)
            at_end = lease_owners(engine)
            emulator_cpu = h.cpu_seconds(emulator.pid) - emulator_cpu
            ids = replica_pids(engine)
            with httpx.Client(timeout=60) as http:
                for replica in replicas:
                    replica.cpu_s = h.cpu_seconds(replica.server.pid) - replica.cpu_at_start
                    replica.peak_mb = h.memory_mb(replica.server.pid)
                    scrape(replica, http)
        moved = settle_buckets(replicas, ids, at_start, at_end, sites)
    return Cycle(n, replicas, startup_s, learn_s, emulator_cpu, moved, load)


def settle_buckets(
    replicas: list[Replica],
    ids: dict[int, str],
    at_start: dict[str, frozenset[int]],
    at_end: dict[str, frozenset[int]],
    sites: int,
) -> list[str]:
    """Each replica's buckets and their sites; what says they moved during the cycle."""
    per_bucket = [0] * BUCKETS
    for site_id in range(1, sites + 1):
        per_bucket[bucket_of(site_id)] += 1
    moved = []
    if at_start != at_end:
        moved.append("the leases table differs between the start and the end of the cycle")
    for replica in replicas:
        if ids.get(replica.server.pid) != replica.replica_id:
            moved.append(f"{replica.name}: pid {replica.server.pid} not registered as "
                         f"{replica.replica_id}")  # fmt: skip
        replica.buckets = at_start.get(replica.replica_id, frozenset())
        replica.sites = sum(per_bucket[b] for b in replica.buckets)
        if replica.held.get("poll") != len(at_end.get(replica.replica_id, ())):
            held = replica.held.get("poll")
            moved.append(f"{replica.name}: cellect_leases_held{{kind=poll}} {held}, "
                         f"but {len(replica.buckets)} in the table")  # fmt: skip
        for change in ("poll lost", "poll released"):
            if replica.changes.get(change):
                moved.append(f"{replica.name}: {change} {replica.changes[change]:.0f}")
    return moved


# --- the report ------------------------------------------------------------------------


def checks_of(cycle: Cycle, sites: int) -> dict[str, bool]:
    """The two verdicts of one replica count, printed with their figures."""
    reps, n = cycle.replicas, cycle.n
    totals = {s: sum(r.answered(s) for r in reps) for s in STREAMS}
    shared = sum(len(r.buckets) for r in reps) == BUCKETS and all(r.buckets for r in reps)
    exact = all(r.answered(s) == r.sites for r in reps for s in STREAMS)
    once = shared and exact and not cycle.moved and all(t == sites for t in totals.values())
    shares = [r.per_site / cycle.requests * n if cycle.requests else 0.0 for r in reps]
    even = all(abs(share - 1) <= SHARE_TOLERANCE for share in shares)
    shown = ", ".join(f"{s} {t} ({t - sites:+d})" for s, t in totals.items())
    return {
        f"N={n}: each site polled exactly once per stream — {shown} for {sites} sites; "
        f"every replica's requests = the sites of its buckets: {exact}; the buckets "
        f"shared ({sum(len(r.buckets) for r in reps)}/256) and unmoved": once,
        f"N={n}: each replica's share of the requests within ±15 % of 1/{n} — "
        + ", ".join(f"{share:.3f}×" for share in shares): even,
    }


def print_cycle(cycle: Cycle, raw_rate: float) -> None:
    print(f"N={cycle.n}: {cycle.load}")
    print(f"  learning the sites (one replica, its portfolio round) {cycle.learn_s:.1f} s; "
          f"{cycle.n} replica(s) launched to every /healthz 200: "
          f"{cycle.startup_s:.1f} s")  # fmt: skip
    for r in cycle.replicas:
        ends = "  ".join(f"{s} {r.ended[s] - r.started:6.1f} s" for s in STREAMS)
        extra = r.not_200()
        print(f"  {r.name} (pid {r.server.pid}, {r.replica_id[:8]}): buckets {len(r.buckets)} "
              f"({r.sites} sites), portfolio lease {r.held.get('portfolio', 0):.0f}; "
              f"answered: " + ", ".join(f"{s} {r.answered(s)}" for s in STREAMS)
              + (f"; other codes {extra}" if extra else ""))  # fmt: skip
        print(f"      rounds ended after  {ends}; cycle {r.cycle_s:.1f} s, "
              f"{r.per_site / r.cycle_s:.0f} req/s, CPU {r.cpu_s:.1f} s, "
              f"VmHWM {r.peak_mb:.0f} MB")  # fmt: skip
    print(f"  all: {cycle.requests} per-site requests in {cycle.window_s:.1f} s = "
          f"{cycle.rate:.0f} req/s ({cycle.rate / raw_rate:.2f}× raw); emulator CPU "
          f"{cycle.emulator_cpu_s:.1f} s, replicas' CPU "
          f"{sum(r.cpu_s for r in cycle.replicas):.1f} s")  # fmt: skip
    for reason in cycle.moved:
        print(f"  buckets moved: {reason}")


def print_table(cycles: list[Cycle], raw_rate: float, sites: int) -> None:
    print(f"\n{'N':>2} | {'buckets per replica':19} | {'requests per replica':26} | "
          f"{'cycle s per replica':20} | {'whole s':>7} | {'req/s':>6} | {'× raw':>5} | "
          "dup/skip")  # fmt: skip
    for c in cycles:
        buckets = "/".join(str(len(r.buckets)) for r in c.replicas)
        requests = "/".join(str(r.per_site) for r in c.replicas)
        cycle_s = "/".join(f"{r.cycle_s:.1f}" for r in c.replicas)
        off = sum(abs(sum(r.answered(s) for r in c.replicas) - sites) for s in STREAMS)
        print(f"{c.n:>2} | {buckets:19} | {requests:26} | {cycle_s:20} | {c.window_s:7.1f} | "
              f"{c.rate:6.0f} | {c.rate / raw_rate:5.2f} | {off}")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    print(h.busy_elsewhere())
    print(f"code: {Path(receiver.cellect.__file__).parents[1]} (the subprocesses inherit "
          f"PYTHONPATH={os.environ.get('PYTHONPATH', '')!r})")  # fmt: skip
    cycles: list[Cycle] = []
    with tempfile.TemporaryDirectory(prefix="cellect-bench-replicas-") as tmp:
        logdir = Path(tmp)
        emulator = h.emulator(logdir, "--sites", str(args.sites), "--speed", "1",
                              "--refresh-token", REFRESH_TOKEN)  # fmt: skip
        with h.running(emulator):
            up = emulator.wait_http("/_emulator/clock", within=300)
            print(f"emulator: {h.CLI} emulator --sites {args.sites} (pid {emulator.pid}), "
                  f"answering after {up:.1f} s")  # fmt: skip
            raw = poll.run_loop(lambda: poll.raw_round(emulator.url, args.sites))
            raw_rate = 3 * args.sites / max(raw.values())
            print(f"raw httpx (bench/poll.py's baseline): {poll.shown(raw)}; "
                  f"{3 * args.sites / raw_rate:.1f} s = {raw_rate:.0f} req/s")  # fmt: skip
            for n in args.replicas:
                cycles.append(measure(n, logdir, emulator, args.timeout, args.sites))
                print_cycle(cycles[-1], raw_rate)
    return report(cycles, raw_rate, args.sites)


def report(cycles: list[Cycle], raw_rate: float, sites: int) -> int:
    print_table(cycles, raw_rate, sites)
    print("(dup/skip: |sum over replicas of answered requests − sites|, summed over the "
          "3 streams. On this 2-core machine the emulator and the replicas share the "
          "cores: total req/s cannot grow with N here and is not a target.)")  # fmt: skip
    verdicts: list[bool] = []
    for cycle in cycles:
        for name, ok in checks_of(cycle, sites).items():
            print(f"{name}: {h.verdict(ok)}")
            verdicts.append(ok)
    ok = all(verdicts)
    print(f"replicas: {h.verdict(ok)}")
    return 0 if ok else 1


def counts(text_value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text_value.split(","))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=30_000)
    parser.add_argument("--replicas", type=counts, default=COUNTS, help="e.g. 1,2,3")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a cycle at most")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
