"""Benchmark: one full poll cycle over 10,000 emulated sites vs the emulator's raw capacity.

The emulator (10,000 sites) is served by uvicorn in a subprocess on a free loopback port.
In this process, side by side in one run:

(a) raw: the very requests a poll cycle makes (1 PortfolioOverview, then per site the
    availability events, the ExAnte and the ExPost windows) fired by a bare
    httpx.AsyncClient with the same concurrency, answers read and dropped;
(b) ours: PortfolioPoller, EventsPoller, ExAntePoller and ExPostPoller `run_once` with the
    real CellectClient, Fleet, metrics and an SQLite database in a temporary directory.

Prints both times, the ratio raw / ours (target >= 0.7, DESIGN.md) and the peak RSS of
this process (target < 250 MB), PASS/FAIL; exits 1 on FAIL.
Usage: python bench/poll.py [--sites N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from receiver.cellect import paths
from receiver.cellect.clock import Clock
from receiver.cellect.enums import Symbol
from receiver.cellect.timestamps import format_timestamp
from receiver.fleet.picture import Fleet
from receiver.metrics.registry import Metrics
from receiver.pollers.base import Poller
from receiver.pollers.context import PollContext
from receiver.pollers.events import EventsPoller
from receiver.pollers.portfolio import PortfolioPoller
from receiver.pollers.schedules import EX_ANTE_SPAN, ExAntePoller, ExPostPoller
from receiver.storage.engine import create_engine_for, upgrade
from receiver.vendor.client import CellectClient

REFRESH_TOKEN = "bench-refresh-token-0001"
RATIO_TARGET = 0.7
RSS_TARGET_MB = 250.0
EX_POST_INTERVAL_S = 900.0


def serve_emulator(port: int, sites: int) -> None:
    """The subprocess: the emulator with `sites` sites on 127.0.0.1:port."""
    from receiver.emulator.cloud import Emulator
    from receiver.emulator.server import serve

    emulator = Emulator(sites=sites, seed=1, clock=Clock())
    emulator.issue_refresh_token(1, token=REFRESH_TOKEN)
    asyncio.run(serve(emulator, "127.0.0.1", port))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the emulator exited early")
        try:
            if httpx.get(url + "/_emulator/clock", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the emulator did not start in time")


async def bounded(concurrency: int, jobs: list[Any]) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> None:
        async with limit:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def raw_cycle(url: str, sites: int, concurrency: int) -> float:
    """(a) the requests of one poll cycle, bare; returns the seconds taken."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        answer = await http.post(
            paths.ACCESS_TOKEN, json={}, headers={"Authorization": f"Bearer {REFRESH_TOKEN}"}
        )
        http.headers["Authorization"] = f"Bearer {answer.json()['accessToken']}"
        now = datetime.now(UTC)
        ante = window(Symbol.EX_ANTE, now, now + EX_ANTE_SPAN)
        post = window(Symbol.EX_POST, now - timedelta(seconds=3 * EX_POST_INTERVAL_S), now)

        def get(path: str, params: dict[str, str]) -> Any:
            async def job() -> None:
                (await http.get(path, params=params)).raise_for_status()

            return job

        started = time.perf_counter()
        portfolio = {"symbol": Symbol.PORTFOLIO_OVERVIEW.value}
        await get(paths.PORTFOLIO_MASTER_DATA, portfolio)()
        events = {"symbol": Symbol.AVAILABILITY.value}
        for path, params in ((paths.events, events), (paths.time_series, ante)):
            await bounded(concurrency, [get(path(i), params) for i in range(1, sites + 1)])
        await bounded(concurrency, [get(paths.time_series(i), post) for i in range(1, sites + 1)])
        return time.perf_counter() - started


def window(symbol: Symbol, start: datetime, end: datetime) -> dict[str, str]:
    return {
        "symbol": symbol.value,
        "startDate": format_timestamp(start),
        "endDate": format_timestamp(end),
    }


async def our_cycle(url: str, concurrency: int, database_url: str) -> tuple[float, int]:
    """(b) one round of each poller; returns the seconds taken and the failed rounds."""
    clock = Clock()
    engine = create_engine_for(database_url)
    upgrade(engine)
    metrics = Metrics(CollectorRegistry(), now=clock.timestamp)
    fleet = Fleet(metrics=metrics, clock=clock, in_progress_stuck_s=300)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:
        client = CellectClient(
            http, api_url=url, token_url=url, refresh_token=SecretStr(REFRESH_TOKEN), clock=clock,
            timeout=30, on_request=fleet.api_request,
        )  # fmt: skip
        await client.portfolio_overview()  # the token, outside the timing as in (a)
        context = PollContext(client, engine, fleet, concurrency)
        common: dict[str, Any] = {"clock": clock, "interval_s": 60.0}
        pollers: list[Poller] = [
            PortfolioPoller(context, **common),
            EventsPoller(context, **common),
            ExAntePoller(context, **common),
            ExPostPoller(context, clock=clock, interval_s=EX_POST_INTERVAL_S),
        ]
        started = time.perf_counter()
        failed = 0
        for poller in pollers:
            ok = await poller.run_once()
            failed += 0 if ok else 1
            if not ok:
                print(f"  {poller.name} failed: {poller.last_error}")
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve-emulator", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.serve_emulator, args.sites)
        return 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, __file__, "--serve-emulator", str(port), "--sites", str(args.sites)]
    process = subprocess.Popen(command)
    try:
        wait_ready(url, process)
        with tempfile.TemporaryDirectory() as tmp:
            raw_s = asyncio.run(raw_cycle(url, args.sites, args.concurrency))
            ours_s, failed = asyncio.run(
                our_cycle(url, args.concurrency, f"sqlite:///{tmp}/bench.db")
            )
    finally:
        process.terminate()
        process.wait(timeout=30)
    return report(args.sites, raw_s, ours_s, failed)


def report(sites: int, raw_s: float, ours_s: float, failed: int) -> int:
    ratio = raw_s / ours_s
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    requests = 1 + 3 * sites
    print(f"poll cycle over {sites} sites ({requests} requests)")
    print(f"  raw emulator capacity: {raw_s:8.2f} s  ({requests / raw_s:7.0f} req/s)")
    print(f"  our poll cycle:        {ours_s:8.2f} s  ({requests / ours_s:7.0f} req/s)")
    print(f"  ratio raw/ours:        {ratio:8.2f}    (target >= {RATIO_TARGET})")
    print(f"  peak RSS:              {rss_mb:8.1f} MB (target < {RSS_TARGET_MB:g} MB)")
    ok = ratio >= RATIO_TARGET and rss_mb < RSS_TARGET_MB and failed == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
