"""Benchmark: the emulated Cellect Box, 48 h of 15-minute schedules on 1,000 sites.

Each site gets 192 entries of 15 minutes (powers within its ratings, some entries cut
short so that 0 kW gaps appear), posted as the vendor's rules allow: day one at the
start, day two 12 h later (every entry must end within 48 h of its post). Every post is
checked by the shared `validate_schedule` beforehand, outside the timing. Then a frozen
clock is stepped in 15-minute steps and every box is advanced at each step, random
outages included. Timed: the stores and all the advances.

Prints the wall time, the speed-up over the baseline (real time: 48 h of emulated time
takes 48 h), the DESIGN.md target (<= 10 s) with PASS/FAIL, and an energy-balance check
of every battery. Exits 1 on FAIL.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from receiver.cellect.clock import Clock
from receiver.cellect.models import ScheduleEntry
from receiver.cellect.timestamps import format_timestamp
from receiver.cellect.validation import SiteRatings, validate_schedule
from receiver.emulator.box import Box
from receiver.emulator.state import SiteSpec

SITES = 1_000
ENTRIES = 192
SLOT = timedelta(minutes=15)
HORIZON_S = 48 * 3600.0
TARGET_S = 10.0
T0 = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
DAY_TWO_AT = T0 + timedelta(hours=12)


def spec(site_id: int, rng: random.Random) -> SiteSpec:
    capacity = rng.choice((50.0, 100.0, 215.0, 500.0))
    return SiteSpec(
        site_id=site_id,
        partner_id=1,
        name=f"Site {site_id}",
        country="DE",
        latitude=50.0,
        longitude=10.0,
        capacity_kwh=capacity,
        rated_charge_kw=capacity / 2,
        rated_discharge_kw=capacity / 2,
        initial_soc_pct=rng.uniform(20.0, 80.0),
    )


def body(site: SiteSpec, first: int, rng: random.Random) -> dict[str, object]:
    """A Store Time Series body: 96 slots from slot `first`, one in eight cut short."""
    data = []
    for slot in range(first, first + ENTRIES // 2):
        start = T0 + SLOT * (slot + 1)
        end = start + (SLOT * 2 / 3 if rng.random() < 0.125 else SLOT)
        power = round(rng.uniform(-site.rated_charge_kw, site.rated_discharge_kw), 1)
        data.append(
            {"startDate": format_timestamp(start), "endDate": format_timestamp(end),
             "essPowerAC": power}
        )  # fmt: skip
    return {"data": data}


def validated(site: SiteSpec, first: int, now: datetime, rng: random.Random) -> list[ScheduleEntry]:
    ratings = SiteRatings(site.rated_charge_kw, site.rated_discharge_kw)
    result = validate_schedule(body(site, first, rng), ratings, now)
    if not result.ok:
        raise SystemExit(f"invalid bench schedule for site {site.site_id}: {result.violations}")
    return result.entries


def run(boxes: list[Box], posts: list[list[list[ScheduleEntry]]], clock: Clock) -> Counter[int]:
    """Store day one, step the clock by 15 min to the end, store day two on the way."""
    counts: Counter[int] = Counter()
    post_ids = itertools.count(1)
    for box, site_posts in zip(boxes, posts, strict=True):
        counts.update(c.status for c in box.store(site_posts[0], post_id=next(post_ids), now=T0))
    steps = ENTRIES + 1  # the last entry ends 48 h 15 min after the start
    for _ in range(steps):
        now = clock.advance(SLOT.total_seconds())
        if now == DAY_TWO_AT:
            for box, site_posts in zip(boxes, posts, strict=True):
                changes = box.store(site_posts[1], post_id=next(post_ids), now=now)
                counts.update(c.status for c in changes)
        for box in boxes:
            counts.update(c.status for c in box.advance_to(now))
    return counts


def energy_error(box: Box, initial_kwh: float) -> float:
    """|ΔE − (η_c·in − out/η_d)| in kWh: 0 up to rounding when the physics add up."""
    s = box.spec
    expected = box.charged_ac_kwh * s.charge_efficiency - box.discharged_ac_kwh / (
        s.discharge_efficiency
    )
    return abs((box.stored_kwh - initial_kwh) - expected)


def main() -> int:
    rng = random.Random(2025)
    specs = [spec(i, rng) for i in range(1, SITES + 1)]
    posts = [[validated(s, 0, T0, rng), validated(s, ENTRIES // 2, DAY_TWO_AT, rng)] for s in specs]
    event_ids = itertools.count(1)
    clock = Clock.frozen(T0)
    boxes = [
        Box(s, now=T0, rng=rng, outage_rate_per_day=0.5, next_event_id=lambda: next(event_ids))
        for s in specs
    ]
    initial = [box.stored_kwh for box in boxes]
    began = time.perf_counter()
    counts = run(boxes, posts, clock)
    wall = time.perf_counter() - began
    worst = max(energy_error(box, kwh) for box, kwh in zip(boxes, initial, strict=True))
    outages = sum(len(box.outages) for box in boxes)
    print(f"sites: {SITES}, entries per site: {ENTRIES}, emulated: 48 h (+15 min tail)")
    print(f"status changes: { {int(k): v for k, v in sorted(counts.items())} }, outages: {outages}")
    print(f"energy balance, worst |ΔE − (η_c·in − out/η_d)|: {worst:.2e} kWh")
    print(f"baseline (real time): {HORIZON_S:,.0f} s")
    print(
        f"emulated box:         {wall:.2f} s  (speed-up over real time: {HORIZON_S / wall:,.0f}x)"
    )
    passed = wall <= TARGET_S and worst < 1e-6
    print(f"target <= {TARGET_S:.0f} s: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
