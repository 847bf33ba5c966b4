"""Benchmark: the console's Fleet page at 10,000 sites, over HTTP, against a naive baseline.

Starts the product as a user does — `cellect-monitor run` through the console script,
configured by environment variables, SQLite in a temporary directory — on a database
pre-filled with 10,000 sites (bench/console.py's `fill`; the monitor restores its live
picture from it at start and, without a refresh token, polls nothing). With `--demo` it
runs `cellect-monitor run --emulator --sites 10000` instead (trader off, the polls fill
the fleet): the monitor then polls 10,000 sites at ×60 in the event loop that answers
the console, and the figures are mostly that load's. It waits until the Fleet page
counts 10,000 sites, signs in with the admin token through the login
form (a session cookie, as a browser), then times, in the same run:

- the Fleet page (first page, 50 rows) and its live fragment (what the 5-second refresh
  fetches), and the fragment sorted by SoC and filtered by state, deep in the pages;
- the naive baseline: every one of the 10,000 rows rendered — what the placeholder's
  "all sites in one page" would cost — measured as the fragment walked at 200 rows a page
  over all its pages (the largest page the console serves), summed.

Each figure is the median and p95 of ROUNDS requests (sequential, one connection). Prints
PASS/FAIL against 300 ms (the page and the fragment, p95) and exits 1 on FAIL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SITES = 10_000
ROUNDS = 30
TARGET_S = 0.300
TOKEN = "bench-admin-token-0123456789"
READY_WITHIN_S = 600.0
COUNT = re.compile(r'<dd id="site-count">(\d+)</dd>')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _script() -> str:
    here = Path(sys.executable).parent / "cellect-monitor"
    found = str(here) if here.exists() else shutil.which("cellect-monitor")
    if found is None:
        sys.exit("cellect-monitor is not installed (make .venv/.installed)")
    return found


def _prefill(workdir: Path) -> None:
    """10,000 sites (5 % with an open outage) and their measurements, bulk inserted with
    bench/console.py's `fill` into a migrated SQLite database."""
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import console as read_bench  # bench/console.py

    from receiver.storage.engine import create_engine_for, upgrade

    engine = create_engine_for(f"sqlite:///{workdir}/monitor.db")
    upgrade(engine)
    read_bench.fill(engine, random.Random(1))
    engine.dispose()


def _start(workdir: Path, demo: bool) -> tuple[subprocess.Popen[bytes], str]:
    port, emulator = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    env |= {
        "CELLECT_PORT": str(port),
        "CELLECT_ADMIN_TOKEN": TOKEN,
        "CELLECT_DATABASE_URL": f"sqlite:///{workdir}/monitor.db",
    }
    args = [_script(), "run"]
    if demo:
        args += ["--emulator", "--emulator-port", str(emulator),
                 "--sites", str(SITES), "--no-demo-trader"]  # fmt: skip
    log = (workdir / "monitor.log").open("wb")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def _sign_in(client: httpx.Client) -> None:
    form = client.get("/login")
    csrf = CSRF.search(form.text)
    assert csrf is not None, form.text[:500]
    answer = client.post(
        "/login",
        data={"token": TOKEN, "csrf_token": csrf.group(1), "next": "/"},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
    assert answer.status_code in (200, 303), answer.status_code


def _wait_ready(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    signed_in = False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"cellect-monitor ended ({process.returncode})")
        try:
            if not signed_in:
                _sign_in(client)
                signed_in = True
            found = COUNT.search(client.get("/?fragment=live&per=10").text)
            if found and int(found.group(1)) >= SITES:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)  # a bounded wait for the first portfolio poll
    sys.exit(f"the fleet did not reach {SITES} sites within {READY_WITHIN_S:.0f} s")


def _time(client: httpx.Client, path: str) -> list[float]:
    took = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        answer = client.get(path)
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.status_code)
    return took


def _naive(client: httpx.Client) -> list[float]:
    """All 10,000 rows rendered: the fragment at 200 rows a page, every page, summed."""
    took = []
    for _ in range(max(3, ROUNDS // 10)):
        started = time.perf_counter()
        rows = 0
        for page in range(1, SITES // 200 + 1):
            answer = client.get(f"/?fragment=live&per=200&page={page}")
            rows += answer.text.count('class="site-row')
        took.append(time.perf_counter() - started)
        assert rows == SITES, rows
    return took


def _report(name: str, took: list[float]) -> float:
    ordered = sorted(took)
    median = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<52} median {median * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms")
    return p95


def main() -> int:
    demo = "--demo" in sys.argv[1:]
    workdir = Path(tempfile.mkdtemp(prefix="bench-console-pages-"))
    if not demo:
        _prefill(workdir)
    process, url = _start(workdir, demo)
    try:
        with httpx.Client(base_url=url, timeout=60.0, follow_redirects=False) as client:
            _wait_ready(client, process)
            how = f"run --emulator --sites {SITES}, polling" if demo else "run, pre-filled database"
            print(f"cellect-monitor {how} (SQLite), {ROUNDS} requests each")
            page = _report("Fleet page (/, 50 rows)", _time(client, "/"))
            live = _report("live fragment (/?fragment=live)", _time(client, "/?fragment=live"))
            deep = "/?fragment=live&sort=-soc&state=available&page=20"
            _report("fragment sorted by SoC, filtered, page 20", _time(client, deep))
            naive = _report("naive: all 10,000 rows rendered (50 × 200)", _naive(client))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    worst = max(page, live)
    print(f"naive / live fragment (p95): {naive / live:.0f}x")
    verdict = "PASS" if worst <= TARGET_S else "FAIL"
    print(f"{verdict}: Fleet page and live fragment p95 {worst * 1000:.1f} ms (target ≤ 300 ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
