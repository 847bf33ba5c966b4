"""Benchmark: one poll round of `cellect-monitor run` over a 10,000-site emulator,
against a raw httpx client firing the very same requests with the same concurrency.

The emulator: `cellect-monitor emulator --sites 10000 --speed 1 --refresh-token T` in a
process of its own (real time). Against it, one after the other:

(a) raw: in this process, on uvloop as the monitor, one httpx.AsyncClient (httpx's
    default limits, as the monitor's): PortfolioOverview and the three per-site streams
    of a round — availability events, the ExAnte window (now .. now + 48 h - 1 min), the
    ExPost window (now - 3 intervals .. now - 1 s) — each stream over the 10,000 sites
    with at most CELLECT_POLL_CONCURRENCY (16) in flight, all at once (the monitor's
    pollers run concurrently, each with its own limit); answers parsed and dropped.
(b) ours: `cellect-monitor run` (CELLECT_API_URL/CELLECT_TOKEN_URL at the emulator,
    CELLECT_REFRESH_TOKEN, a fresh SQLite file, every interval 3600 s so that each
    poller makes one round). A first start learns the sites (its portfolio round) and is
    stopped; the second start, on that database, knows the sites at once, so its four
    pollers start their rounds together with its lifespan, just before it first answers
    /healthz. Each poller's round ends at its `last_success` in /readyz (JSON, read
    every 0.2 s; the monitor runs on real time).

Prints each stream's time from the start, both rounds' total (the slowest stream), the
ratio raw/ours (target >= 0.7) and PASS/FAIL; exits 1 on FAIL.

    .venv/bin/python bench/poll.py [--sites 10000]

What was measured and tried (docs/performance.md, "Polling"): py-spy on the polling
monitor found 17.6 % of its samples in a failed `import sniffio` per httpcore pool
operation (fixed: pyproject depends on sniffio); the rest is mostly httpx itself, which
the raw baseline pays too. Rounds back to back (1 s intervals) were tried first and
dropped: the events round's 10,000 upserts, in a worker thread, waited for the GIL at
every statement while the other rounds kept the loop busy — it took minutes. Later:
one httpcore pool for ~48 requests in flight walked every connection per request and
closed connections as they went idle (its keep-alive limit counts busy ones too); a
pool per poll worker (receiver.vendor.pools) took the round from 75.9 s to 38.2 s on
the same machine (0.77x -> 1.22x). The transport in a process of its own was tried
and dropped (0.56x: more CPU on two cores shared with the emulator).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import httpx

from receiver.cellect import paths
from receiver.cellect.enums import Symbol
from receiver.cellect.timestamps import format_timestamp

REFRESH_TOKEN = "bench-refresh-token-0001"
TARGET = 0.7
STREAMS = ("events", "ex_ante", "ex_post")
INTERVAL_S = 3600.0  # one round each in the measurement
CONCURRENCY = 16


def window(symbol: Symbol, start: datetime, end: datetime) -> dict[str, str]:
    return {
        "symbol": symbol.value,
        "startDate": format_timestamp(start),
        "endDate": format_timestamp(end),
    }


def stream_request(stream: str, site_id: int) -> tuple[str, dict[str, str]]:
    """The path and query one poller sends for one site, windows taken now."""
    now = datetime.now(UTC)
    if stream == "events":
        return paths.events(site_id), {"symbol": Symbol.AVAILABILITY.value}
    if stream == "ex_ante":
        span = timedelta(hours=48) - timedelta(minutes=1)
        return paths.time_series(site_id), window(Symbol.EX_ANTE, now, now + span)
    start = now - timedelta(seconds=3 * INTERVAL_S)
    return paths.time_series(site_id), window(Symbol.EX_POST, start, now - timedelta(seconds=1))


async def raw_round(url: str, sites: int) -> dict[str, float]:
    """(a): one poll round — PortfolioOverview and the three per-site streams at once;
    the seconds from the start to the end of each."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post(
            paths.ACCESS_TOKEN, headers={"Authorization": f"Bearer {REFRESH_TOKEN}"}
        )
        http.headers["Authorization"] = f"Bearer {answer.json()['accessToken']}"
        began = time.perf_counter()
        retried: dict[str, int] = {}

        async def portfolio() -> float:
            params = {"symbol": Symbol.PORTFOLIO_OVERVIEW.value}
            response = await http.get(paths.PORTFOLIO_MASTER_DATA, params=params)
            response.raise_for_status()
            response.json()
            return time.perf_counter() - began

        async def one(stream: str, site_id: int, limit: asyncio.Semaphore) -> None:
            async with limit:
                for attempt in range(3):  # a kept-alive connection the server just closed
                    path, params = stream_request(stream, site_id)
                    try:
                        response = await http.get(path, params=params)
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                        retried[stream] = retried.get(stream, 0) + 1
                        continue
                    response.raise_for_status()
                    response.json()
                    return

        async def stream_round(stream: str) -> float:
            limit = asyncio.Semaphore(CONCURRENCY)
            await asyncio.gather(*(one(stream, s, limit) for s in range(1, sites + 1)))
            return time.perf_counter() - began

        results = await asyncio.gather(portfolio(), *(stream_round(s) for s in STREAMS))
        if retried:
            print(f"  raw: requests sent again after a transport error: {retried}")
        return dict(zip(("portfolio", *STREAMS), results, strict=True))


def run_loop(main: Callable[[], Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def monitor_round(monitor: h.Server, within: float) -> dict[str, float]:
    """(b): the seconds from the monitor's start (its first /healthz 200: its pollers
    start with its lifespan, just before it listens) to each poller's first success."""
    started = time.time()
    deadline = time.monotonic() + within
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < deadline:
            pollers = http.get(monitor.url + "/readyz").json()["pollers"]
            done = {s: pollers[s]["last_success"] for s in (*STREAMS, "portfolio")}
            if all(done.values()):
                return {s: datetime.fromisoformat(v).timestamp() - started for s, v in done.items()}
            time.sleep(0.2)
    raise SystemExit(f"the pollers did not all succeed within {within:.0f} s")


def fill_sites(logdir: Path, env: dict[str, str]) -> None:
    """A first start that only learns the sites (the portfolio poller's first round)."""
    monitor = h.monitor(logdir, env)
    with h.running(monitor), httpx.Client(timeout=10) as http:
        monitor.wait_http("/healthz")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if http.get(monitor.url + "/readyz").json()["pollers"]["portfolio"]["last_success"]:
                return
            time.sleep(0.2)
    raise SystemExit("the portfolio poller did not succeed within 300 s")


def shown(times: dict[str, float]) -> str:
    return "  ".join(f"{name} {seconds:6.2f} s" for name, seconds in times.items())


def main(args: argparse.Namespace) -> int:
    print(h.busy_elsewhere())
    with tempfile.TemporaryDirectory(prefix="cellect-bench-poll-") as tmp:
        logdir = Path(tmp)
        emulator = h.emulator(logdir, "--sites", str(args.sites), "--speed", "1",
                              "--refresh-token", REFRESH_TOKEN)  # fmt: skip
        with h.running(emulator):
            emulator.wait_http("/_emulator/clock", within=120)
            print(f"emulator: {h.CLI} emulator --sites {args.sites} (pid {emulator.pid})")
            raw = run_loop(lambda: raw_round(emulator.url, args.sites))
            print(f"raw httpx: {shown(raw)}")
            env = {
                "CELLECT_DATABASE_URL": f"sqlite:///{logdir / 'monitor.db'}",
                "CELLECT_API_URL": emulator.url,
                "CELLECT_TOKEN_URL": emulator.url,
                "CELLECT_REFRESH_TOKEN": REFRESH_TOKEN,
                "CELLECT_PORTFOLIO_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_EVENTS_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_EX_ANTE_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_EX_POST_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_POLL_CONCURRENCY": str(CONCURRENCY),
            }
            fill_sites(logdir, env)
            monitor = h.monitor(logdir, env)
            with h.running(monitor):
                monitor.wait_http("/healthz")
                print(f"monitor: {h.CLI} run (pid {monitor.pid}), restarted with the sites")
                ours = monitor_round(monitor, within=args.timeout)
                print(f"monitor:   {shown(ours)}")
    return report(raw, ours, args.sites)


def report(raw: dict[str, float], ours: dict[str, float], sites: int) -> int:
    print(f"one poll round over {sites} sites: PortfolioOverview and 3 x {sites} requests "
          f"at once, {CONCURRENCY} in flight per stream; seconds from start to end:")  # fmt: skip
    for name in raw:
        print(f"  {name:9} raw {raw[name]:7.2f} s  monitor {ours[name]:7.2f} s  "
              f"ratio {raw[name] / ours[name]:.2f}")  # fmt: skip
    raw_s, ours_s = max(raw.values()), max(ours.values())
    ratio = raw_s / ours_s
    print(f"baseline, raw httpx, the whole round: {raw_s:7.2f} s ({3 * sites / raw_s:.0f} req/s)")
    print(
        f"cellect-monitor run, the whole round:   {ours_s:7.2f} s ({3 * sites / ours_s:.0f} req/s)"
    )
    print(f"ratio raw/ours {ratio:.2f}, target >= {TARGET}: {h.verdict(ratio >= TARGET)}")
    return 0 if ratio >= TARGET else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds at most")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
