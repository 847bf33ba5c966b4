"""The delivery report: per site and per entry, planned against delivered energy over a
window, with failures and availability (`cellect-monitor report`, `GET /api/v1/energy`).

Entries are those starting in `[start, end)` whose energy was computed
(receiver.storage.energy: entries that ran, once ended). For each site a `site` row
first, then its `entry` rows by start:

- `planned_kwh`, `delivered_kwh` (signed, + discharge; a site row sums its entries, the
  delivered sum over the entries whose delivered energy is known), `deviation_kwh`
  (delivered − planned, over those entries), `tracking_error` (Σ|delivered − planned| /
  Σ|planned|, the alert's measure; an entry row's own |delivered − planned| / |planned|);
- `status` (the entry's current status), `method` (power, soc or none);
- `failures`: entries reported ImplementationFailed (a site row counts every failed entry
  starting in the window, computed or not; an entry row 1 or 0);
- `availability_share`: the share of the row's time (the entry's, or the window's) not
  covered by a NotAvailable availability event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import overload

from sqlalchemy import Table, and_, func, or_, select
from sqlmodel import Session

from receiver.cellect.enums import AvailabilityStatus, ImplementationStatus
from receiver.storage.reads.paging import ReadError
from receiver.storage.tables import (
    AvailabilityEventRecord,
    EntryEnergy,
    ScheduleEntryRecord,
    Site,
)

MAX_WINDOW = timedelta(days=31)
E: Table = EntryEnergy.__table__  # type: ignore[attr-defined]
S: Table = ScheduleEntryRecord.__table__  # type: ignore[attr-defined]
A: Table = AvailabilityEventRecord.__table__  # type: ignore[attr-defined]
SITES: Table = Site.__table__  # type: ignore[attr-defined]
FAILED = int(ImplementationStatus.IMPLEMENTATION_FAILED)
Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class EnergyReportRow:
    row: str  # "site" or "entry"
    site_id: int
    site_name: str | None
    start_at: datetime
    end_at: datetime
    generation: int | None
    status: int | None
    method: str | None
    planned_kwh: float
    delivered_kwh: float | None
    deviation_kwh: float | None
    tracking_error: float | None
    entries: int
    failures: int
    availability_share: float


@dataclass(frozen=True)
class _Entry:
    site_id: int
    start: datetime
    end: datetime
    generation: int
    status: int | None
    method: str
    planned: float
    delivered: float | None


def energy_report(
    *, session: Session, start: datetime, end: datetime, site_id: int | None = None
) -> list[EnergyReportRow]:
    """The report's rows over `[start, end)` (optionally one site's): module docstring."""
    if end <= start:
        raise ReadError("to", "'to' must be after 'from'")
    if end - start > MAX_WINDOW:
        raise ReadError("from", f"the window spans at most {MAX_WINDOW.days} days")
    entries = _entries(session, start, end, site_id)
    failures = _failures(session, start, end, site_id)
    sites = sorted({e.site_id for e in entries} | failures.keys())
    names = _names(session, sites)
    outages = _outages(session, start, end, sites)
    by_site: dict[int, list[_Entry]] = defaultdict(list)
    for entry in entries:
        by_site[entry.site_id].append(entry)
    rows: list[EnergyReportRow] = []
    for site in sites:
        mine = by_site.get(site, [])
        name, down = names.get(site), outages.get(site, [])
        rows.append(_site_row(site, name, start, end, mine, failures.get(site, 0), down))
        rows.extend(_entry_row(e, name, down) for e in mine)
    return rows


def _entries(session: Session, start: datetime, end: datetime, site: int | None) -> list[_Entry]:
    e, s = E.c, S.c
    joined = E.outerjoin(
        S,
        and_(s.site_id == e.site_id, s.start_at == e.start_at, s.end_at == e.end_at,
             s.generation == e.generation),
    )  # fmt: skip
    query = (
        select(
            e.site_id,
            e.start_at,
            e.end_at,
            e.generation,
            s.status,
            e.method,
            e.planned_kwh,
            e.delivered_kwh,
        )
        .select_from(joined)
        .where(e.start_at >= start, e.start_at < end)
        .order_by(e.site_id, e.start_at, e.generation)
    )
    if site is not None:
        query = query.where(e.site_id == site)
    return [_Entry(*row) for row in session.execute(query).all()]


def _failures(session: Session, start: datetime, end: datetime, site: int | None) -> dict[int, int]:
    s = S.c
    query = (
        select(s.site_id, func.count())
        .where(s.status == FAILED, s.start_at >= start, s.start_at < end)
        .group_by(s.site_id)
    )
    if site is not None:
        query = query.where(s.site_id == site)
    return {site_id: int(count) for site_id, count in session.execute(query).all()}


def _names(session: Session, sites: list[int]) -> dict[int, str]:
    if not sites:
        return {}
    query = select(SITES.c.site_id, SITES.c.name).where(SITES.c.site_id.in_(sites))
    return {site_id: name for site_id, name in session.execute(query).all()}


def _outages(
    session: Session, start: datetime, end: datetime, sites: list[int]
) -> dict[int, list[Span]]:
    """Each site's NotAvailable spans overlapping the window (open ones up to its end)."""
    if not sites:
        return {}
    a = A.c
    query = select(a.site_id, a.start_at, a.end_at).where(
        a.site_id.in_(sites),
        a.availability_status == int(AvailabilityStatus.NOT_AVAILABLE),
        a.start_at < end,
        or_(a.end_at.is_(None), a.end_at > start),
    )
    found: dict[int, list[Span]] = defaultdict(list)
    for site_id, began, ended in session.execute(query).all():
        found[site_id].append((began, ended or end))
    return found


def availability_share(span: Span, outages: Iterable[Span]) -> float:
    """The share of `span` not covered by any of `outages` (which may overlap)."""
    lo, hi = span
    total = (hi - lo).total_seconds()
    if total <= 0:
        return 1.0
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in outages if a < hi and b > lo)
    down, reach = 0.0, lo
    for a, b in clipped:
        a = max(a, reach)
        if b > a:
            down += (b - a).total_seconds()
            reach = b
    return 1.0 - down / total


def _error(pairs: Iterable[tuple[float, float | None]]) -> tuple[float | None, float | None, float]:
    """(Σ delivered, Σ(delivered − planned), Σ|d − p| / Σ|p|) over the known entries."""
    delivered = deviation = missed = asked = 0.0
    known = 0
    for planned, got in pairs:
        if got is None:
            continue
        known += 1
        delivered += got
        deviation += got - planned
        missed += abs(got - planned)
        asked += abs(planned)
    if not known:
        return None, None, 0.0
    return delivered, deviation, (missed / asked if asked > 0 else -1.0)


def _site_row(
    site: int,
    name: str | None,
    start: datetime,
    end: datetime,
    entries: list[_Entry],
    failures: int,
    down: list[Span],
) -> EnergyReportRow:
    delivered, deviation, error = _error((e.planned, e.delivered) for e in entries)
    return EnergyReportRow(
        "site", site, name, start, end, None, None, None,
        _kwh(sum(e.planned for e in entries)), _kwh(delivered), _kwh(deviation),
        None if delivered is None or error < 0 else _ratio(error),
        len(entries), failures, _ratio(availability_share((start, end), down)),
    )  # fmt: skip


def _entry_row(e: _Entry, name: str | None, down: list[Span]) -> EnergyReportRow:
    deviation = None if e.delivered is None else e.delivered - e.planned
    error = None
    if deviation is not None and e.planned != 0:
        error = abs(deviation) / abs(e.planned)
    return EnergyReportRow(
        "entry", e.site_id, name, e.start, e.end, e.generation, e.status, e.method,
        _kwh(e.planned), _kwh(e.delivered), _kwh(deviation), _ratio(error), 1,
        int(e.status == FAILED), _ratio(availability_share((e.start, e.end), down)),
    )  # fmt: skip


@overload
def _kwh(value: float) -> float: ...
@overload
def _kwh(value: None) -> None: ...
def _kwh(value: float | None) -> float | None:
    """Energies to the watt-hour (what the samples can tell; no float noise in a report)."""
    return None if value is None else round(value, 3) + 0.0


@overload
def _ratio(value: float) -> float: ...
@overload
def _ratio(value: None) -> None: ...
def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4) + 0.0
