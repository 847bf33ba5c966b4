"""Benchmark: start-up of `cellect-monitor run`, as a user starts it.

- webhooks only: `.venv/bin/cellect-monitor run` with CELLECT_DATABASE_URL (a fresh
  SQLite file: the first start migrates it), CELLECT_WEBHOOK_SECRET and CELLECT_PORT,
  from the exec to the first 200 of `GET /healthz`; target <= 2 s.
- the demo: `.venv/bin/cellect-monitor run --emulator --emulator-port P` (its emulator
  a child process), from the exec to the first 200 of `GET /readyz`; target <= 5 s.
- baseline: a bare Starlette app served by `uvicorn --loop uvloop --http httptools`
  (harness/bare.py `hello`), from the exec to its first 200.

Each is started `--runs` times (the median counts; every run on a fresh database);
GET is retried every 20 ms. Prints the figures, the ratios to the baseline, the targets
and PASS/FAIL; exits 1 on FAIL.

    .venv/bin/python bench/startup.py [--runs 3]

What was measured and tried (docs/performance.md, "Start-up"): the monitor's log
timestamps split a start into imports (~2.1 s; `-X importtime`: SQLAlchemy ~40 %,
Apprise ~8 %), migrations (~0.15 s) and the wait for the webhook writer process, which
imports SQLAlchemy again before it answers ready (~1 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h

HEALTHZ_TARGET_S = 2.0
READYZ_TARGET_S = 5.0
SECRET = "bench-webhook-secret-0001"


def webhooks_only(logdir: Path, run: int) -> float:
    database = logdir / f"webhooks-{run}.db"
    env = {"CELLECT_DATABASE_URL": f"sqlite:///{database}", "CELLECT_WEBHOOK_SECRET": SECRET}
    monitor = h.monitor(logdir, env)
    with h.running(monitor):
        return monitor.wait_http("/healthz")


def demo(logdir: Path, run: int) -> float:
    database = logdir / f"demo-{run}.db"
    env = {"CELLECT_DATABASE_URL": f"sqlite:///{database}"}
    emulator_port = h.free_port()
    monitor = h.monitor(logdir, env, "--emulator", "--emulator-port", str(emulator_port))
    with h.running(monitor):
        return monitor.wait_http("/readyz")


def bare(logdir: Path, _run: int) -> float:
    server = h.bare_server(logdir, "harness.bare:hello")
    with h.running(server):
        return server.wait_http("/")


def main(args: argparse.Namespace) -> int:
    print(h.busy_elsewhere())
    times: dict[str, list[float]] = {"bare": [], "healthz": [], "readyz": []}
    with tempfile.TemporaryDirectory(prefix="cellect-bench-startup-") as tmp:
        logdir = Path(tmp)
        for run in range(args.runs):
            for name, start in (("bare", bare), ("healthz", webhooks_only), ("readyz", demo)):
                times[name].append(start(logdir, run))
    for name, values in times.items():
        print(f"  {name:8} " + "  ".join(f"{v:5.2f} s" for v in values))
    base = statistics.median(times["bare"])
    healthz = statistics.median(times["healthz"])
    readyz = statistics.median(times["readyz"])
    healthz_ok, readyz_ok = healthz <= HEALTHZ_TARGET_S, readyz <= READYZ_TARGET_S
    print(f"baseline, bare uvicorn[standard] app, exec to first 200: {base:5.2f} s")
    print(f"cellect-monitor run, exec to /healthz 200: {healthz:5.2f} s ({healthz / base:.1f}x "
          f"the baseline), target <= {HEALTHZ_TARGET_S:g} s: {h.verdict(healthz_ok)}")  # fmt: skip
    print(f"cellect-monitor run --emulator, exec to /readyz 200: {readyz:5.2f} s "
          f"({readyz / base:.1f}x the baseline), target <= {READYZ_TARGET_S:g} s: "
          f"{h.verdict(readyz_ok)}")  # fmt: skip
    ok = healthz_ok and readyz_ok
    print(f"startup: {h.verdict(ok)}")
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
