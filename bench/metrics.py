"""Benchmark: /metrics at 10,000 sites, ours against a naive labelled-gauge registry.

Both sides hold the same series: the naive registry is built by copying every sample our
registry yields through the ordinary `collect()` into plain labelled `Gauge`s, and is
rendered with `prometheus_client.generate_latest`, as a straightforward implementation
would be on every scrape. Ours is `render_metrics` (registry part + cached site text).
Measured in one run on one machine; prints both times per scrape, the ratio and whether
it meets the DESIGN.md target (>= 10x). Exits 1 when it does not.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from receiver.cellect.enums import DowntimeType, EventReason, EventSource, ImplementationStatus
from receiver.metrics.registry import Metrics, render_metrics
from receiver.metrics.sites import Availability, ScheduleOutlook, SiteSnapshot

SITES = 10_000
TARGET = 10.0
NOW = 1_750_000_000.0


def populate(metrics: Metrics, rng: random.Random) -> None:
    """10,000 sites with state, availability, outlooks and some schedule history."""
    metrics.update_sites(snapshot(i, rng) for i in range(1, SITES + 1))
    metrics.update_availability(availability(i, rng) for i in range(1, SITES + 1))
    metrics.update_schedules(
        ScheduleOutlook(i, rng.uniform(0, 48 * 3600), rng.randint(0, 2))
        for i in range(1, SITES + 1)
    )
    metrics.set_thresholds((0.1, 0.95), {i: (0.2, 0.9) for i in range(1, SITES + 1, 10)})
    for _ in range(SITES * 3):
        metrics.schedule_status(rng.randint(1, SITES), rng.choice(list(ImplementationStatus)))
    for endpoint in ("ex_ante", "ex_post", "portfolio_overview"):
        metrics.observe_api(endpoint, 200, rng.random())
    metrics.observe_webhook("accepted", 0.004)


def snapshot(site_id: int, rng: random.Random) -> SiteSnapshot:
    return SiteSnapshot(
        site_id=site_id,
        site_name=f'Site "{site_id}" Müller\\Nord',
        country=rng.choice(["DE", "NL", "AT", "CH"]),
        latitude=rng.uniform(45, 55),
        longitude=rng.uniform(5, 15),
        soc_percent=rng.uniform(0, 100),
        power_kw=rng.uniform(-500, 500),
        capacity_kwh=rng.choice([1000.0, 2000.0, 4000.0]),
        rated_charge_kw=500.0,
        rated_discharge_kw=500.0,
        updated_at=NOW - rng.uniform(0, 60),
    )


def availability(site_id: int, rng: random.Random) -> Availability:
    if rng.random() > 0.05:
        return Availability(site_id, True)
    return Availability(
        site_id, False, DowntimeType.UNPLANNED, EventReason.OUTAGE, EventSource.INVERTER
    )


def naive_copy(registry: CollectorRegistry) -> CollectorRegistry:
    """Every sample of `registry`, held in plain labelled Gauges of a fresh registry."""
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            by_name[sample.name].append((sample.labels, sample.value))
    naive = CollectorRegistry()
    for name, samples in by_name.items():
        labelnames = sorted(samples[0][0])
        gauge = Gauge(name, f"naive {name}", labelnames, registry=naive)
        for labels, value in samples:
            (gauge.labels(**labels) if labelnames else gauge).set(value)
    return naive


def per_scrape(render: Callable[[], bytes], seconds: float) -> tuple[float, int]:
    """Mean seconds per call over repeated calls for about `seconds`, and the body size."""
    body = render()  # warm-up: fills caches, as the first scrape after a poll does
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 3:
        render()
        count += 1
    return elapsed / count, len(body)


def samples_in(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def main() -> int:
    registry = CollectorRegistry()
    metrics = Metrics(registry, now=lambda: NOW, stale_after_s=600.0)
    populate(metrics, random.Random(42))
    naive = naive_copy(registry)

    ours_s, ours_bytes = per_scrape(lambda: render_metrics(metrics), 3.0)
    naive_s, naive_bytes = per_scrape(lambda: generate_latest(naive), 10.0)
    start = time.perf_counter()
    metrics.update_availability([Availability(1, True)], NOW)  # invalidates the site cache
    render_metrics(metrics)
    rebuild_s = time.perf_counter() - start

    ours_n, naive_n = samples_in(render_metrics(metrics)), samples_in(generate_latest(naive))
    ratio = naive_s / ours_s
    print(f"sites: {SITES}, series: ours {ours_n}, naive {naive_n}")
    print(f"ours   /metrics: {ours_s * 1000:9.3f} ms per scrape ({ours_bytes} bytes)")
    print(f"naive  /metrics: {naive_s * 1000:9.3f} ms per scrape ({naive_bytes} bytes)")
    print(f"ours, first scrape after an availability poll (rebuild): {rebuild_s * 1000:.1f} ms")
    print(f"ratio: {ratio:.1f}x")
    ok = ratio >= TARGET and ours_n == naive_n
    print(f"target >= {TARGET:g}x: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
