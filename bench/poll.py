"""Benchmark: poll cycle time of `cellect-monitor run` over a 10,000-site emulator,
against a raw httpx client firing the very same requests with the same concurrency.

The emulator: `cellect-monitor emulator --sites 10000 --speed 1 --refresh-token T` in a
process of its own (real time). Side by side in one run, against that emulator:

(a) raw: in this process, one httpx.AsyncClient (httpx's default limits, as the
    monitor's), on uvloop as the monitor: the three per-site request streams of a poll
    cycle — availability events, the ExAnte window (now .. now + 48 h - 1 min), the
    ExPost window (now - 3 intervals .. now - 1 s) — each over the 10,000 sites with at
    most CELLECT_POLL_CONCURRENCY (16) in flight, the three streams at once (the
    monitor's pollers run concurrently, each with its own limit), answers parsed as JSON
    and dropped; cycles back to back.
(b) ours: `cellect-monitor run` with CELLECT_API_URL/CELLECT_TOKEN_URL at the emulator,
    CELLECT_REFRESH_TOKEN, the per-site pollers' intervals at 1 s and no jitter, so that
    their rounds run back to back (a round that outlasts its interval is followed by the
    next at once); the portfolio poller at 300 s (it runs once, at start: the sites).
    Each poller's `last_success` is read from `/readyz` (JSON) every 0.2 s: with rounds
    back to back, the time between two successes is one round. The first round with
    sites starts one interval after the last empty round (sites not known yet) started.

Prints each stream's mean cycle for both, the ratio raw/ours (target >= 0.7) with
PASS/FAIL; exits 1 on FAIL.

    .venv/bin/python bench/poll.py [--sites 10000] [--cycles 1]

What was measured and tried: see docs/performance.md ("Polling").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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
INTERVAL_S = 1.0
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


async def raw_cycles(url: str, sites: int, cycles: int) -> dict[str, list[float]]:
    """(a): the streams at once, each `cycles` rounds back to back (the first on fresh
    connections, as the monitor's first); the seconds of each round."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post(
            paths.ACCESS_TOKEN, headers={"Authorization": f"Bearer {REFRESH_TOKEN}"}
        )
        http.headers["Authorization"] = f"Bearer {answer.json()['accessToken']}"
        portfolio = {"symbol": Symbol.PORTFOLIO_OVERVIEW.value}
        (await http.get(paths.PORTFOLIO_MASTER_DATA, params=portfolio)).raise_for_status()

        async def one(stream: str, site_id: int, limit: asyncio.Semaphore) -> None:
            async with limit:
                path, params = stream_request(stream, site_id)
                response = await http.get(path, params=params)
                response.raise_for_status()
                response.json()

        async def stream_rounds(stream: str) -> list[float]:
            limit = asyncio.Semaphore(CONCURRENCY)
            took = []
            for _ in range(cycles):
                began = time.perf_counter()
                await asyncio.gather(*(one(stream, s, limit) for s in range(1, sites + 1)))
                took.append(time.perf_counter() - began)
            return took

        results = await asyncio.gather(*(stream_rounds(s) for s in STREAMS))
        return dict(zip(STREAMS, results, strict=True))


def run_loop(main: Callable[[], Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def monitor_cycles(monitor: h.Server, cycles: int, within: float) -> dict[str, list[float]]:
    """(b): each per-site poller's rounds, from the successive `last_success` of /readyz.

    Before the portfolio poller has the sites, the per-site rounds are empty: each
    succeeds at once and the next starts one interval after it started. So the first
    round with the sites started one interval after the last empty success, and every
    later round when the one before it succeeded (back to back)."""
    seen: dict[str, list[datetime]] = {s: [] for s in STREAMS}
    empty: dict[str, datetime] = {}
    portfolio_done: datetime | None = None
    deadline = time.monotonic() + within
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < deadline:
            pollers = http.get(monitor.url + "/readyz").json()["pollers"]
            if portfolio_done is None and pollers["portfolio"]["last_success"]:
                portfolio_done = datetime.fromisoformat(pollers["portfolio"]["last_success"])
            for stream in STREAMS:
                value = pollers[stream]["last_success"]
                at = datetime.fromisoformat(value) if value else None
                if at is None or at in seen[stream]:
                    continue
                if portfolio_done is None or at <= portfolio_done:
                    empty[stream] = at
                elif at - empty[stream] > timedelta(seconds=2 * INTERVAL_S):
                    seen[stream].append(at)  # a round with the sites
            if all(len(v) >= cycles for v in seen.values()):
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"not {cycles} rounds of each poller within {within:.0f} s: "
                             f"{ {k: len(v) for k, v in seen.items()} }")  # fmt: skip
    first_start = {s: empty[s] + timedelta(seconds=INTERVAL_S) for s in STREAMS}
    return {
        stream: [
            (end - start).total_seconds()
            for start, end in zip([first_start[stream], *times], times, strict=False)
        ][:cycles]
        for stream, times in seen.items()
    }


def means(cycles: dict[str, list[float]]) -> str:
    return "  ".join(f"{s} {statistics.mean(v):6.2f} s" for s, v in cycles.items())


def main(args: argparse.Namespace) -> int:
    print(h.busy_elsewhere())
    with tempfile.TemporaryDirectory(prefix="cellect-bench-poll-") as tmp:
        logdir = Path(tmp)
        emulator = h.emulator(logdir, "--sites", str(args.sites), "--speed", "1",
                              "--refresh-token", REFRESH_TOKEN)  # fmt: skip
        with h.running(emulator):
            emulator.wait_http("/_emulator/clock", within=120)
            print(f"emulator: {h.CLI} emulator --sites {args.sites} (pid {emulator.pid})")
            raw = run_loop(lambda: raw_cycles(emulator.url, args.sites, args.cycles))
            print(f"raw httpx: {means(raw)}")
            env = {
                "CELLECT_DATABASE_URL": f"sqlite:///{logdir / 'monitor.db'}",
                "CELLECT_API_URL": emulator.url,
                "CELLECT_TOKEN_URL": emulator.url,
                "CELLECT_REFRESH_TOKEN": REFRESH_TOKEN,
                "CELLECT_PORTFOLIO_INTERVAL_S": "300",
                "CELLECT_EVENTS_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_EX_ANTE_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_EX_POST_INTERVAL_S": str(INTERVAL_S),
                "CELLECT_POLL_JITTER": "0",
                "CELLECT_POLL_CONCURRENCY": str(CONCURRENCY),
            }
            monitor = h.monitor(logdir, env)
            with h.running(monitor):
                monitor.wait_http("/healthz")
                print(f"monitor: {h.CLI} run (pid {monitor.pid})")
                ours = monitor_cycles(monitor, args.cycles, within=args.timeout)
                print(f"monitor:   {means(ours)}")
    return report(raw, ours, args.sites)


def report(raw: dict[str, list[float]], ours: dict[str, list[float]], sites: int) -> int:
    print(f"poll cycle over {sites} sites, 3 x {sites} requests at once, "
          f"{CONCURRENCY} in flight per stream (mean of the rounds):")  # fmt: skip
    for stream in STREAMS:
        r, o = statistics.mean(raw[stream]), statistics.mean(ours[stream])
        print(f"  {stream:8} raw {r:6.2f} s  monitor {o:6.2f} s  ratio {r / o:.2f}")
    raw_s = max(statistics.mean(v) for v in raw.values())
    ours_s = max(statistics.mean(v) for v in ours.values())
    ratio = raw_s / ours_s
    print(f"baseline, raw httpx (slowest stream):   {raw_s:6.2f} s per cycle")
    print(f"cellect-monitor run (slowest poller):   {ours_s:6.2f} s per cycle")
    print(f"ratio raw/ours {ratio:.2f}, target >= {TARGET}: {h.verdict(ratio >= TARGET)}")
    return 0 if ratio >= TARGET else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=1, help="rounds measured per poller")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds at most")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
