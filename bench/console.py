"""Benchmark: the console's two heaviest reads, ours against a naive implementation.

On a temporary database filled with 10,000 sites (each measured a few times, 5 % with an
open outage) and, for one site, 90 days of 1-minute measurements (129,600 rows), bulk
inserted, in one run:

(a) the sites page for the whole fleet: ours walks `site_page` (pages of 1,000; the latest
    measurement and open outage of each site by index probes) against a naive loop that
    reads the sites and then asks, per site, for its latest measurement and its open
    outages (20,001 statements). Target: ours <= 300 ms.
(b) a 7-day chart of the long-measured site, 500 points: ours is `downsampled_measurements`
    (aggregated in SQL) against fetching the week's 10,080 raw rows as ORM objects and
    bucketing them in Python. Target: ours <= 100 ms.

Each timing is the best of several runs (other load on the machine only adds time). On
SQLite always, and on PostgreSQL when the server of CELLECT_BENCH_POSTGRES_URL (default:
the local one, database `test`) answers: a database `bench_console_<random>` is made for
the run and dropped afterwards.
Prints both timings, the ratios and PASS/FAIL; exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, create_engine, insert, or_, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from receiver.storage.engine import create_engine_for, session_factory, upgrade
from receiver.storage.reads import MAX_LIMIT, all_items
from receiver.storage.reads.measurements import downsampled_measurements
from receiver.storage.reads.sites import site_page
from receiver.storage.tables import AvailabilityEventRecord, Measurement, Site

SITES = 10_000
PER_SITE = 5  # measurements of every site, a minute apart, the last at NOW
LONG_SITE = 1
LONG_DAYS = 90
CHART_DAYS = 7
CHART_POINTS = 500
SITES_TARGET_S = 0.300
CHART_TARGET_S = 0.100
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POSTGRES_URL = os.environ.get(
    "CELLECT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BATCH = 20_000


def _batched(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(engine: Engine, rng: random.Random) -> int:
    """The fleet, its measurements and outages, inserted with executemany; rows written."""
    sites = (
        {"site_id": i, "name": f"Site {i}", "country": "ES", "latitude": 40.0, "longitude": -3.0,
         "capacity_kwh": 200.0, "rated_charge_kw": 90.0, "rated_discharge_kw": 100.0,
         "first_seen_at": NOW, "last_seen_at": NOW, "present": True}
        for i in range(1, SITES + 1)
    )  # fmt: skip
    fleet = (
        {"site_id": i, "measured_at": NOW - k * timedelta(minutes=1),
         "soc_pct": rng.uniform(0, 100), "power_kw": rng.uniform(-90, 100)}
        for i in range(1, SITES + 1) for k in range(PER_SITE)
    )  # fmt: skip
    long = (
        {"site_id": LONG_SITE, "measured_at": NOW - k * timedelta(minutes=1),
         "soc_pct": rng.uniform(0, 100), "power_kw": rng.uniform(-90, 100)}
        for k in range(PER_SITE, LONG_DAYS * 24 * 60)
    )  # fmt: skip
    outages = (
        {"site_id": i, "event_id": 1, "availability_status": 2, "downtime_type": "Unplanned",
         "reason": 4, "source": 4, "start_at": NOW - timedelta(hours=1), "end_at": None,
         "first_seen_at": NOW, "last_seen_at": NOW}
        for i in range(1, SITES + 1) if i % 20 == 0
    )  # fmt: skip
    written = 0
    with engine.begin() as connection:
        for model, rows in ((Site, sites), (Measurement, fleet), (Measurement, long),
                            (AvailabilityEventRecord, outages)):  # fmt: skip
            for batch in _batched(rows):
                connection.execute(insert(model.__table__), batch)  # type: ignore[attr-defined]
                written += len(batch)
    with engine.connect() as connection:  # fresh statistics for the planner
        connection.execute(text("ANALYZE"))
        connection.commit()
    return written


def ours_sites(session: Session) -> int:
    pages = all_items(lambda c: site_page(session=session, now=NOW, after=c, limit=MAX_LIMIT))
    return sum(1 for _ in pages)


def naive_sites(session: Session) -> int:
    """The sites, then per site its latest measurement and its open outages."""
    m, e = Measurement, AvailabilityEventRecord
    shown = 0
    for site in session.exec(select(Site).order_by(col(Site.site_id))).all():
        latest = session.exec(
            select(m).where(m.site_id == site.site_id).order_by(col(m.measured_at).desc()).limit(1)
        ).first()
        down = session.exec(
            select(e).where(
                e.site_id == site.site_id, e.availability_status == 2, col(e.start_at) <= NOW,
                or_(col(e.end_at).is_(None), col(e.end_at) > NOW),
            )
        ).all()  # fmt: skip
        shown += 1 if (latest is not None or down is not None) else 0
    return shown


def ours_chart(session: Session) -> int:
    found = downsampled_measurements(
        session=session, site_id=LONG_SITE, start=NOW - timedelta(days=CHART_DAYS), end=NOW,
        points=CHART_POINTS,
    )  # fmt: skip
    return len(found.buckets)


def naive_chart(session: Session) -> int:
    """Every raw row of the week as an ORM object, bucketed and averaged in Python."""
    start = NOW - timedelta(days=CHART_DAYS)
    width = (NOW - start) / CHART_POINTS
    rows = session.exec(
        select(Measurement)
        .where(Measurement.site_id == LONG_SITE, col(Measurement.measured_at) >= start,
               col(Measurement.measured_at) < NOW)
        .order_by(col(Measurement.measured_at))
    ).all()  # fmt: skip
    buckets: dict[int, list[Measurement]] = {}
    for row in rows:
        buckets.setdefault(int((row.measured_at - start) / width), []).append(row)
    return len(
        [(sum(r.soc_pct for r in b) / len(b), sum(r.power_kw for r in b) / len(b))
         for b in buckets.values()]
    )  # fmt: skip


def timed(engine: Engine, read: Callable[[Session], int], runs: int) -> tuple[float, int]:
    """The best time of `runs` reads (after one warm-up), each on a fresh session: the
    machine's other work only ever adds time, so the minimum is the least disturbed."""
    sessions = session_factory(engine)
    times, result = [], 0
    for attempt in range(runs + 1):
        with sessions() as session:
            began = time.perf_counter()
            result = read(session)
            elapsed = time.perf_counter() - began
        if attempt:
            times.append(elapsed)
    return min(times), result


Read = Callable[[Session], int]


def compare(
    name: str, engine: Engine, ours: Read, naive: Read, target: float, runs: tuple[int, int]
) -> bool:
    ours_s, ours_n = timed(engine, ours, runs[0])
    naive_s, naive_n = timed(engine, naive, runs[1])
    ok = ours_s <= target
    print(f"  {name}: ours {ours_s * 1000:8.1f} ms ({ours_n} items)   "
          f"naive {naive_s * 1000:8.1f} ms ({naive_n} items)   "
          f"ratio {naive_s / ours_s:6.1f}x   target <= {target * 1000:.0f} ms: "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return ok


def run(label: str, url: str) -> bool:
    engine = create_engine_for(url)
    try:
        upgrade(engine)
        began = time.perf_counter()
        written = fill(engine, random.Random(1))
        print(f"{label}: {written} rows filled in {time.perf_counter() - began:.1f} s")
        sites_ok = compare("(a) sites page, 10,000 sites ", engine, ours_sites, naive_sites,
                           SITES_TARGET_S, (5, 1))  # fmt: skip
        chart_ok = compare("(b) 7-day chart, 500 points  ", engine, ours_chart, naive_chart,
                           CHART_TARGET_S, (9, 5))  # fmt: skip
        return sites_ok and chart_ok
    finally:
        engine.dispose()


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for the run (None when no server answers), dropped after."""
    name = f"bench_console_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL: skipped ({type(exc).__name__})")
        yield None
        return
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        results.append(run("SQLite", f"sqlite:///{workdir}/bench.db"))
    with postgres_database() as url:
        if url is not None:
            results.append(run("PostgreSQL", url))
    verdict = all(results)
    print("PASS" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
