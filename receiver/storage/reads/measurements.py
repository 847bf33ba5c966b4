"""A site's measurements over a window: raw, a page at a time, or downsampled in SQL.

Downsampling happens in the database: the window [start, end) is cut into at most
`points` buckets of whole seconds, and one GROUP BY returns, per bucket that holds any
measurement, the mean, minimum and maximum SoC and power and the number of samples. A
7-day chart of a site measured every minute is then ~10,000 rows aggregated in the
database and a few hundred sent, instead of ~10,000 rows converted to Python objects.
The bucket of a row is `(epoch seconds(measured_at) - epoch seconds(start)) / width` in
integer arithmetic, which both databases compute exactly (`epoch_seconds` is compiled
per dialect); the rows are found through the unique (site_id, measured_at) index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col

from receiver.storage.reads.paging import (
    DEFAULT_LIMIT,
    Page,
    ReadError,
    check_limit,
    check_window,
    decode_cursor,
    encode_cursor,
    page_of,
)
from receiver.storage.tables import Measurement

MAX_POINTS = 5000
_KIND = "measurements"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MeasurementRow:
    """One stored measurement (power > 0: discharge)."""

    measured_at: datetime
    soc_pct: float
    power_kw: float


@dataclass(frozen=True)
class MeasurementBucket:
    """The measurements of one bucket [at, at + width): their count, mean, min and max."""

    at: datetime
    samples: int
    soc_pct: float
    soc_min: float
    soc_max: float
    power_kw: float
    power_min: float
    power_max: float


@dataclass(frozen=True)
class Downsampled:
    """A window's buckets (only those holding measurements, oldest first) and their width."""

    width_s: int
    buckets: list[MeasurementBucket]


class epoch_seconds(FunctionElement[int]):  # noqa: N801 -- a SQL function, named like one
    """Whole seconds since 1970 of a UTC datetime column, as an integer on every database."""

    type = BigInteger()
    name = "epoch_seconds"
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _sqlite_epoch(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as naive UTC text; strftime('%s') reads it as UTC and drops the fraction.
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _postgres_epoch(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def bucket_width(start: datetime, end: datetime, points: int) -> int:
    """Whole seconds per bucket so that [start, end) fits in at most `points` buckets."""
    span = math.ceil((end - _EPOCH).total_seconds()) - math.floor((start - _EPOCH).total_seconds())
    return max(1, -(-span // points))


def downsampled_measurements(
    *, session: Session, site_id: int, start: datetime, end: datetime, points: int
) -> Downsampled:
    """One site's measurements in [start, end), in at most `points` buckets of equal width.

    Bucket k covers [floor(start) + k·width, floor(start) + (k+1)·width) in whole
    seconds; buckets without measurements are left out (a gap in the data stays a gap).
    """
    check_window(start, end)
    if not 1 <= points <= MAX_POINTS:
        raise ReadError("points", f"points must be between 1 and {MAX_POINTS}")
    width = bucket_width(start, end, points)
    origin = math.floor((start - _EPOCH).total_seconds())
    m = Measurement
    bucket = (
        (epoch_seconds(col(m.measured_at)) - bindparam("origin", origin, BigInteger()))
        // bindparam("width", width, BigInteger())
    ).label("bucket")
    query = (
        select(
            bucket,
            func.count(),
            func.avg(m.soc_pct),
            func.min(m.soc_pct),
            func.max(m.soc_pct),
            func.avg(m.power_kw),
            func.min(m.power_kw),
            func.max(m.power_kw),
        )
        .where(col(m.site_id) == site_id, col(m.measured_at) >= start, col(m.measured_at) < end)
        .group_by(bucket)
        .order_by(bucket)
    )
    buckets = [
        MeasurementBucket(
            at=_EPOCH + timedelta(seconds=origin + int(index) * width),
            samples=count,
            soc_pct=float(soc),
            soc_min=float(soc_min),
            soc_max=float(soc_max),
            power_kw=float(power),
            power_min=float(power_min),
            power_max=float(power_max),
        )
        for index, count, soc, soc_min, soc_max, power, power_min, power_max in session.execute(
            query
        )
    ]
    return Downsampled(width, buckets)


def measurement_page(
    *,
    session: Session,
    site_id: int,
    start: datetime | None = None,
    end: datetime | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[MeasurementRow]:
    """One site's raw measurements in [start, end) (either side open), oldest first."""
    check_window(start, end)
    check_limit(limit)
    m = Measurement
    query = (
        select(col(m.measured_at), col(m.soc_pct), col(m.power_kw))
        .where(col(m.site_id) == site_id)
        .order_by(col(m.measured_at))
        .limit(limit + 1)
    )
    if start is not None:
        query = query.where(col(m.measured_at) >= start)
    if end is not None:
        query = query.where(col(m.measured_at) < end)
    if after is not None:
        (last,) = decode_cursor(after, _KIND, (datetime,))
        query = query.where(col(m.measured_at) > last)
    rows = [MeasurementRow(*row) for row in session.execute(query)]
    return page_of(rows, limit, lambda r: encode_cursor(_KIND, r.measured_at))
