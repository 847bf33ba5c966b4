"""Delivered against planned energy per entry (`entry_energy`): what is left to compute,
the measurements to compute it from, and the rows computed.

Entries that ran are those in 2 Implemented or 3 ImplementationFailed (a failed entry's
plan was not delivered: what the site did meanwhile is measured all the same) whose
planned power is known (ExAnte/ExPost polls; webhooks carry none). 4 Deleted entries never
ran; 5 Overwritten ones were replaced by the entry that overwrote them (which is counted):
both are left out. A row is written once per entry (unique key): a second computation —
another replica, a restart — inserts nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, exists, func, select
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.dialect import insert_for
from receiver.storage.tables import EntryEnergy, Measurement, ScheduleEntryRecord, Site

E: Table = EntryEnergy.__table__  # type: ignore[attr-defined]
S: Table = ScheduleEntryRecord.__table__  # type: ignore[attr-defined]
M: Table = Measurement.__table__  # type: ignore[attr-defined]
SITES: Table = Site.__table__  # type: ignore[attr-defined]
RAN = (int(ImplementationStatus.IMPLEMENTED), int(ImplementationStatus.IMPLEMENTATION_FAILED))
KEY = ("site_id", "start_at", "end_at", "generation")


@dataclass(frozen=True)
class EndedEntry:
    """An entry that ran and ended, without its energy yet."""

    site_id: int
    start: datetime
    end: datetime
    generation: int
    power_kw: float


@dataclass(frozen=True)
class EnergyRow:
    """One entry's planned and delivered energy (kWh, + discharge), as stored."""

    site_id: int
    start: datetime
    end: datetime
    generation: int
    planned_kwh: float
    delivered_kwh: float | None
    method: str
    samples: int


def ended_without_energy(
    *, session: Session, ended_after: datetime, ended_before: datetime, limit: int = 2000
) -> list[EndedEntry]:
    """Entries that ran and ended in `(ended_after, ended_before]` with no energy row yet,
    oldest end first."""
    e, s = E.c, S.c
    done = exists().where(
        e.site_id == s.site_id,
        e.start_at == s.start_at,
        e.end_at == s.end_at,
        e.generation == s.generation,
    )
    query = (
        select(s.site_id, s.start_at, s.end_at, s.generation, s.power_kw)
        .where(
            s.status.in_(RAN),
            s.power_kw.is_not(None),
            s.end_at > ended_after,
            s.end_at <= ended_before,
            ~done,
        )
        .order_by(s.end_at, s.site_id)
        .limit(limit)
    )
    return [EndedEntry(*row) for row in session.execute(query).all()]


def measurements_between(
    *, session: Session, site_id: int, lo: datetime, hi: datetime
) -> list[tuple[datetime, float, float]]:
    """The site's (measured_at, power_kw, soc_pct) in `[lo, hi]`, oldest first."""
    m = M.c
    query = (
        select(m.measured_at, m.power_kw, m.soc_pct)
        .where(m.site_id == site_id, m.measured_at >= lo, m.measured_at <= hi)
        .order_by(m.measured_at)
    )
    return [(at, power, soc) for at, power, soc in session.execute(query).all()]


def capacities(*, session: Session, site_ids: Collection[int]) -> dict[int, float]:
    """The installed capacity (kWh) of each of `site_ids` with master data."""
    if not site_ids:
        return {}
    query = select(SITES.c.site_id, SITES.c.capacity_kwh).where(SITES.c.site_id.in_(site_ids))
    return {site_id: capacity for site_id, capacity in session.execute(query).all()}


def record_energy(
    *, session: Session, rows: Sequence[EnergyRow], computed_at: datetime
) -> list[EnergyRow]:
    """Store `rows`; returns those inserted (an entry already stored is left as it is)."""
    if not rows:
        return []
    values = [
        {
            "site_id": r.site_id,
            "start_at": r.start,
            "end_at": r.end,
            "generation": r.generation,
            "planned_kwh": r.planned_kwh,
            "delivered_kwh": r.delivered_kwh,
            "method": r.method,
            "samples": r.samples,
            "computed_at": computed_at,
        }
        for r in rows
    ]
    statement = (
        insert_for(session, E)
        .values(values)
        .on_conflict_do_nothing(index_elements=list(KEY))
        .returning(E.c.site_id, E.c.start_at, E.c.end_at, E.c.generation)
    )
    inserted = {tuple(row) for row in session.execute(statement).all()}
    return [r for r in rows if _key(r) in inserted]


def _key(row: EnergyRow) -> tuple[int, datetime, datetime, int]:
    return (row.site_id, row.start, row.end, row.generation)


def latest_energy(
    *, session: Session, per_site: int, ended_after: datetime
) -> dict[int, list[EnergyRow]]:
    """Each site's latest `per_site` rows that ended after `ended_after`, oldest first
    (what a monitor starting reads its tracking windows back from)."""
    e = E.c
    rank = (
        func.row_number()
        .over(partition_by=e.site_id, order_by=(e.end_at.desc(), e.id.desc()))
        .label("rank")
    )
    columns = (e.site_id, e.start_at, e.end_at, e.generation, e.planned_kwh, e.delivered_kwh)
    ranked = select(*columns, e.method, e.samples, rank).where(e.end_at > ended_after).subquery()
    query = (
        select(ranked)
        .where(ranked.c.rank <= per_site)
        .order_by(ranked.c.site_id, ranked.c.end_at, ranked.c.start_at)
    )
    found: dict[int, list[EnergyRow]] = {}
    for site_id, start, end, generation, planned, delivered, method, samples, _ in session.execute(
        query
    ).all():
        found.setdefault(site_id, []).append(
            EnergyRow(site_id, start, end, generation, planned, delivered, method, samples)
        )
    return found
