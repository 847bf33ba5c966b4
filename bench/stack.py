"""Benchmark: the monitor's webhook ingest on uvicorn's plain stack (asyncio + h11)
against uvicorn[standard] (uvloop + httptools, what `cellect-monitor run` ships).

Both are the product started through its console script exactly as bench/ingest.py
starts it (`cellect-monitor run`, webhooks only, SQLite, the URL `webhooks url` prints,
access log on); the plain stack with CELLECT_SERVER_STACK=asyncio, a switch that exists
for this comparison only (receiver/serving.py: asyncio.run instead of uvloop.run and
uvicorn's `http="h11"` instead of httptools). Same wrk load as bench/ingest.py
(harness/webhooks.lua), alternating rounds; the median round of each counts. granian
is not compared: it is not installed here, and it would need the app built by hand
(there is no CLI path to it).

Informational (the issue asks for the figures, not a target): prints both rates and
p99s and the ratio; exits 1 only when a delivery failed.

    .venv/bin/python bench/stack.py [--seconds 10] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h

SECRET = "bench-webhook-secret-0001"
STACKS = {"uvicorn[standard] (uvloop+httptools)": {}, "uvicorn plain (asyncio+h11)": {
    "CELLECT_SERVER_STACK": "asyncio"}}  # fmt: skip


def main(args: argparse.Namespace) -> int:
    print(f"load generator: {'wrk' if h.has_wrk() else 'asyncio generator (no wrk)'}, "
          f"{args.connections} connections")  # fmt: skip
    print(h.busy_elsewhere())
    rounds: dict[str, list[h.Load]] = {name: [] for name in STACKS}
    with tempfile.TemporaryDirectory(prefix="cellect-bench-stack-") as tmp:
        logdir = Path(tmp)
        monitors, envs, urls = {}, {}, {}
        for index, (name, extra) in enumerate(STACKS.items()):
            database = logdir / f"monitor-{index}.db"
            envs[name] = {"CELLECT_DATABASE_URL": f"sqlite:///{database}",
                          "CELLECT_WEBHOOK_SECRET": SECRET} | extra  # fmt: skip
            (logdir / str(index)).mkdir()
            monitors[name] = h.monitor(logdir / str(index), envs[name])
        with h.running(*monitors.values()):
            for name, monitor in monitors.items():
                monitor.wait_http("/healthz")  # migrated: `webhooks url` may open the file
                printed = subprocess.run(
                    [str(h.CLI), "webhooks", "url", "--public-url", monitor.url],
                    env=h.clean_env(envs[name]), capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                urls[name] = printed.strip().splitlines()[-1]
            base, run = h.webhook_base(), 0
            for round_index in range(args.rounds + 1):  # the first is the warm-up
                for name in STACKS:
                    run += 1
                    result = h.webhook_load(
                        urls[name], seconds=args.seconds if round_index else 3.0,
                        connections=args.connections, threads=1, sites=1000, entries=2,
                        base=base, run=run,
                    )  # fmt: skip
                    if round_index:
                        rounds[name].append(result)
                        print(f"  {name:38} {result.line()}")
    medians = {}
    for name, results in rounds.items():
        rate = statistics.median_low(r.rate for r in results)
        medians[name] = next(r for r in results if r.rate == rate)
    (std, plain) = (medians[name] for name in STACKS)
    for name, result in medians.items():
        print(f"{name:38} {result.rate:7.0f} deliveries/s, p99 {result.p99 * 1e3:6.1f} ms")
    print(f"uvicorn[standard] / plain: {std.rate / plain.rate:.2f}x the rate")
    failed = sum(r.non_2xx + r.errors for results in rounds.values() for r in results)
    print(f"stack: {'PASS' if not failed else 'FAIL'} ({failed} deliveries failed)")
    return 0 if not failed else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
