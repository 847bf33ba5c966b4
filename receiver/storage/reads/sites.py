"""The sites as the operator sees them: master data, the latest measurement, availability.

A page is one statement whatever its size: the sites of the page, each joined to its
latest measurement by a correlated subquery (an index probe: the unique
(site_id, measured_at) index read backwards, then the row by primary key) and with the
start of its open outage (a probe of (site_id, start_at)). No statement reads the whole
measurements table, so a page costs the same with a day or 90 days of history. Rows
come back as plain tuples, their timestamps parsed the fast way (UtcDateTimeRead):
the Python side of 10,000 sites costs more than the statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, func, or_, select, type_coerce
from sqlmodel import Session, col

from receiver.cellect.enums import AvailabilityStatus
from receiver.storage.reads.paging import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    decode_cursor,
    encode_cursor,
    page_of,
)
from receiver.storage.tables import (
    AvailabilityEventRecord,
    Measurement,
    ScheduleEntryRecord,
    Site,
)
from receiver.storage.types import UtcDateTimeRead

_KIND = "sites"
_SITES: Table = Site.__table__  # type: ignore[attr-defined]
_MEASUREMENTS: Table = Measurement.__table__  # type: ignore[attr-defined]
_EVENTS: Table = AvailabilityEventRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SiteSummary:
    """One site: master data, presence, its latest measurement and whether it is available.

    `measured_at`, `soc_pct` and `power_kw` are None before the first measurement;
    `unavailable_since` is the start of the earliest NotAvailable event open at `now`
    (None: available).
    """

    site_id: int
    name: str
    country: str
    latitude: float
    longitude: float
    capacity_kwh: float
    rated_charge_kw: float
    rated_discharge_kw: float
    present: bool
    first_seen_at: datetime
    last_seen_at: datetime
    measured_at: datetime | None
    soc_pct: float | None
    power_kw: float | None
    unavailable_since: datetime | None

    @property
    def available(self) -> bool:
        return self.unavailable_since is None


def site_page(
    *,
    session: Session,
    now: datetime,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
    present: bool | None = None,
) -> Page[SiteSummary]:
    """The sites by id, a page at a time; only present (or absent) ones if `present` says."""
    check_limit(limit)
    query = _summaries(now).order_by(_SITES.c.site_id).limit(limit + 1)
    if after is not None:
        (last,) = decode_cursor(after, _KIND, (int,))
        query = query.where(_SITES.c.site_id > last)
    if present is not None:
        query = query.where(_SITES.c.present == present)
    rows = [SiteSummary(*row) for row in session.execute(query)]
    return page_of(rows, limit, lambda s: encode_cursor(_KIND, s.site_id))


def site_summary(*, session: Session, site_id: int, now: datetime) -> SiteSummary | None:
    """One site as `site_page` shows it; None when the site is unknown."""
    row = session.execute(_summaries(now).where(_SITES.c.site_id == site_id)).first()
    return None if row is None else SiteSummary(*row)


def _fast(column: Any) -> Any:
    return type_coerce(column, UtcDateTimeRead())


def _summaries(now: datetime) -> Select[Any]:
    """Plain rows in SiteSummary's field order (no ORM objects: at 10,000 sites, building
    and tracking entities would cost more than the statement)."""
    sites, m, e = _SITES.c, _MEASUREMENTS.c, _EVENTS.c
    newest = _MEASUREMENTS.alias("newest").c
    latest = (
        select(newest.id)
        .where(newest.site_id == sites.site_id)
        .order_by(newest.measured_at.desc())
        .limit(1)
        .correlate(_SITES)
        .scalar_subquery()
    )
    down_since = (
        select(func.min(e.start_at))
        .where(
            e.site_id == sites.site_id,
            e.availability_status == int(AvailabilityStatus.NOT_AVAILABLE),
            e.start_at <= now,
            or_(e.end_at.is_(None), e.end_at > now),
        )
        .scalar_subquery()
    )
    return select(
        sites.site_id, sites.name, sites.country, sites.latitude, sites.longitude,
        sites.capacity_kwh, sites.rated_charge_kw, sites.rated_discharge_kw, sites.present,
        _fast(sites.first_seen_at), _fast(sites.last_seen_at), _fast(m.measured_at),
        m.soc_pct, m.power_kw, _fast(down_since),
    ).select_from(
        _SITES.outerjoin(_MEASUREMENTS, m.id == latest)
    )  # fmt: skip


def site_known(*, session: Session, site_id: int) -> bool:
    """Whether anything of the site is stored: master data, schedule entries or events.

    Webhooks and event polls may name a site before a portfolio poll has (or when there
    is no polling at all), so a site without master data can still have a schedule.
    Each probe is an index lookup.
    """
    probes = (
        select(col(Site.site_id)).where(col(Site.site_id) == site_id),
        select(col(ScheduleEntryRecord.id)).where(col(ScheduleEntryRecord.site_id) == site_id),
        select(col(AvailabilityEventRecord.id)).where(
            col(AvailabilityEventRecord.site_id) == site_id
        ),
    )
    return any(session.execute(probe.limit(1)).first() is not None for probe in probes)
