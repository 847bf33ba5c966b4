"""Benchmark: the emulated Cellect Box through the console script — 48 h of 15-minute
schedules on 1,000 sites.

`cellect-monitor emulator --sites 1000 --speed 0` (its clock frozen at the real time of
start-up) in a process of its own, driven over HTTP only, as docs/emulator.md shows:
an access token from `POST /v1/access-token`; the ratings of every site from
PortfolioOverview; then, timed: each site's day one posted at the start (96 entries of
15 minutes, powers within its ratings, one in eight cut short to leave a 0 kW gap),
the clock advanced in 15-minute steps with `POST /_emulator/clock {"advance_s": 900}`
(every step syncs every box: transfers, starts, executions, status changes) and day two
(96 more) posted 12 h in (each post within the vendor's 48 h), with a fresh token
(they live 6 emulated hours). 193 steps reach the end
of the last entry. The posts go over 8 keep-alive connections, the steps one by one.
Afterwards, untimed: ExPost of a sample of sites must show every entry Implemented (2)
and every battery's SoC must lie within its limits.

Baseline: real time (48 h of emulated time take 172,800 s). Target <= 10 s. Prints the
time, the speed-up over real time, where the time went (posts, clock steps), the target
and PASS/FAIL; exits 1 on FAIL.

    .venv/bin/python bench/box.py [--sites 1000]

What was measured and tried (docs/performance.md, "Emulated box"): the time is split
between the posts (each validated and stored by the emulator: 12.6 ms at load 5.5) and
the clock steps (101 ms each, a sync of every box); the day-two posts first failed with
401 (the access token had expired in emulated time) until a fresh token was taken.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import httpx

from receiver.cellect import paths
from receiver.cellect.enums import Symbol
from receiver.cellect.timestamps import format_timestamp, parse_timestamp

ENTRIES = 192
SLOT = timedelta(minutes=15)
HORIZON_S = 48 * 3600.0
TARGET_S = 10.0
STEPS = ENTRIES + 1  # the last entry ends 48 h 15 min after the start
DAY_TWO_STEP = 48  # 12 h in
REFRESH_TOKEN = "bench-refresh-token-0001"
PLACEHOLDER = "access-token-taken-when-posting"


def body(t0: datetime, first: int, ratings: tuple[float, float], rng: random.Random) -> bytes:
    """A Store Time Series body: 96 slots from slot `first` + 1, one in eight cut short."""
    charge, discharge = ratings
    data = []
    for slot in range(first, first + ENTRIES // 2):
        start = t0 + SLOT * (slot + 1)
        end = start + (SLOT * 2 / 3 if rng.random() < 0.125 else SLOT)
        power = round(rng.uniform(-charge, discharge) * 0.9, 1)
        data.append({"startDate": format_timestamp(start), "endDate": format_timestamp(end),
                     "essPowerAC": power})  # fmt: skip
    return json.dumps({"data": data}).encode()


def posts(
    sites: dict[int, tuple[float, float]], t0: datetime, first: int, token: str, seed: int
) -> list[bytes]:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    query = f"?symbol={Symbol.ESS_POWER_AC.value}"
    return [
        h.http_request("POST", paths.time_series(site) + query, body(t0, first, r, rng), headers)
        for site, r in sites.items()
    ]


def token(http: httpx.Client) -> str:
    answer = http.post(paths.ACCESS_TOKEN, headers={"Authorization": f"Bearer {REFRESH_TOKEN}"})
    answer.raise_for_status()
    return str(answer.json()["accessToken"])


def check(http: httpx.Client, sites: list[int], t0: datetime) -> list[str]:
    """Untimed: every entry of a sample of sites Implemented; every SoC within limits."""
    problems = []
    auth = {"Authorization": f"Bearer {token(http)}"}
    now = parse_timestamp(http.get("/_emulator/clock").json()["now"])
    assert now is not None
    for site in sites[:: max(1, len(sites) // 20)]:
        params = {"symbol": Symbol.EX_POST.value, "startDate": format_timestamp(t0),
                  "endDate": format_timestamp(now - timedelta(seconds=1))}  # fmt: skip
        results = http.get(paths.time_series(site), params=params, headers=auth).json()
        entries = [r for r in results["results"] if "implementationStatus" in r]
        statuses = {r["implementationStatus"] for r in entries}
        if len(entries) != ENTRIES or statuses != {2}:
            problems.append(f"site {site}: {len(entries)} entries, statuses {statuses}")
    for view in http.get("/_emulator/sites").json():
        if not 4.999 <= view["socPct"] <= 95.001:
            problems.append(f"site {view['siteId']}: SoC {view['socPct']} %")
    return problems


def main(args: argparse.Namespace) -> int:
    print(h.busy_elsewhere())
    with tempfile.TemporaryDirectory(prefix="cellect-bench-box-") as tmp:
        emulator = h.emulator(Path(tmp), "--sites", str(args.sites), "--speed", "0",
                              "--refresh-token", REFRESH_TOKEN)  # fmt: skip
        with h.running(emulator), httpx.Client(base_url=emulator.url, timeout=60) as http:
            emulator.wait_http("/_emulator/clock", within=120)
            print(f"emulator: {h.CLI} emulator --sites {args.sites} --speed 0 "
                  f"(pid {emulator.pid})")  # fmt: skip
            t0 = parse_timestamp(http.get("/_emulator/clock").json()["now"])
            assert t0 is not None
            access = token(http)
            portfolio = http.get(
                paths.PORTFOLIO_MASTER_DATA,
                params={"symbol": Symbol.PORTFOLIO_OVERVIEW.value},
                headers={"Authorization": f"Bearer {access}"},
            ).json()
            ratings = {
                int(s["siteId"]): (float(s["essPowerACRatedCharge"]),
                                   float(s["essPowerACRatedDischarge"]))
                for s in portfolio
            }  # fmt: skip
            day_one = posts(ratings, t0, 0, access, 1)
            day_two = posts(ratings, t0, ENTRIES // 2, PLACEHOLDER, 2)
            timings = run(http, emulator.url, day_one, day_two)
            problems = check(http, sorted(ratings), t0)
    return report(args.sites, timings, problems)


def run(http: httpx.Client, url: str, day_one: list[bytes], day_two: list[bytes]) -> dict[str, Any]:
    """Timed: post day one, step the clock to the end, post day two on the way."""
    advance = h.http_request(
        "POST", "/_emulator/clock", b'{"advance_s": 900}', {"Content-Type": "application/json"}
    )
    posting = stepping = 0.0
    began = time.perf_counter()
    statuses = h.send_all(url, day_one)
    posting += time.perf_counter() - began
    for step in range(1, STEPS + 1):
        start = time.perf_counter()
        statuses += h.send_all(url, [advance], connections=1)
        stepping += time.perf_counter() - start
        if step == DAY_TWO_STEP:  # access tokens live 6 emulated hours: a fresh one
            start = time.perf_counter()
            fresh = token(http).encode()
            statuses += h.send_all(url, [r.replace(PLACEHOLDER.encode(), fresh) for r in day_two])
            posting += time.perf_counter() - start
    wall = time.perf_counter() - began
    refused = sum(1 for s in statuses if s != 200)
    return {"wall": wall, "posting": posting, "stepping": stepping, "refused": refused,
            "requests": len(statuses)}  # fmt: skip


def report(sites: int, t: dict[str, Any], problems: list[str]) -> int:
    print(f"sites: {sites}, entries per site: {ENTRIES}, emulated: 48 h (+15 min tail), "
          f"{t['requests']} requests ({t['refused']} not 200)")  # fmt: skip
    print(f"  posts ({2 * sites}): {t['posting']:6.2f} s; clock steps ({STEPS}): "
          f"{t['stepping']:6.2f} s ({t['stepping'] / STEPS * 1e3:.1f} ms each)")  # fmt: skip
    for problem in problems[:10]:
        print(f"  check failed: {problem}")
    print(f"baseline (real time): {HORIZON_S:,.0f} s")
    print(f"emulated box over HTTP: {t['wall']:.2f} s "
          f"(speed-up over real time: {HORIZON_S / t['wall']:,.0f}x)")  # fmt: skip
    ok = t["wall"] <= TARGET_S and not problems and t["refused"] == 0
    print(f"target <= {TARGET_S:.0f} s: {h.verdict(ok)}")
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
