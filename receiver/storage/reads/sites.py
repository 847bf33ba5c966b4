"""The sites as the operator sees them: master data, the latest measurement, availability.

One page is two statements whatever its size: the sites of the page, each with the id
of its latest measurement and the start of its open outage as correlated scalar
subqueries (one index probe each: the latest measurement through the unique
(site_id, measured_at) index, read backwards; open outages through
(site_id, start_at)), then those measurements by primary key. No statement reads the
whole measurements table, so a page costs the same with a day or 90 days of history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, func, or_, select
from sqlmodel import Session, col

from receiver.cellect.enums import AvailabilityStatus
from receiver.storage.dialect import chunks
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

_KIND = "sites"


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
    query = _summaries(now).order_by(col(Site.site_id)).limit(limit + 1)
    if after is not None:
        (last,) = decode_cursor(after, _KIND, (int,))
        query = query.where(col(Site.site_id) > last)
    if present is not None:
        query = query.where(col(Site.present) == present)
    rows = _with_measurements(session, session.execute(query).all())
    return page_of(rows, limit, lambda s: encode_cursor(_KIND, s.site_id))


def site_summary(*, session: Session, site_id: int, now: datetime) -> SiteSummary | None:
    """One site as `site_page` shows it; None when the site is unknown."""
    query = _summaries(now).where(col(Site.site_id) == site_id)
    rows = _with_measurements(session, session.execute(query).all())
    return rows[0] if rows else None


def _summaries(now: datetime) -> Select[Site, int | None, datetime | None]:
    m, e = Measurement, AvailabilityEventRecord
    latest = (
        select(col(m.id))
        .where(col(m.site_id) == col(Site.site_id))
        .order_by(col(m.measured_at).desc())
        .limit(1)
        .scalar_subquery()
    )
    down_since = (
        select(func.min(e.start_at))
        .where(
            col(e.site_id) == col(Site.site_id),
            col(e.availability_status) == int(AvailabilityStatus.NOT_AVAILABLE),
            col(e.start_at) <= now,
            or_(col(e.end_at).is_(None), col(e.end_at) > now),
        )
        .scalar_subquery()
    )
    return select(Site, latest.label("latest_id"), down_since.label("down_since"))


def _with_measurements(
    session: Session, rows: Sequence[Row[Site, int | None, datetime | None]]
) -> list[SiteSummary]:
    """The summaries of `rows` (site, latest measurement id, down since), the measurements
    read in one statement by primary key."""
    ids = [latest_id for _, latest_id, _ in rows if latest_id is not None]
    m = Measurement
    query = select(col(m.id), col(m.measured_at), col(m.soc_pct), col(m.power_kw))
    measured = {
        row.id: row
        for chunk in chunks(ids)
        for row in session.execute(query.where(col(m.id).in_(chunk)))
    }
    return [
        _summary(site, measured.get(latest_id) if latest_id is not None else None, down_since)
        for site, latest_id, down_since in rows
    ]


def _summary(
    site: Site,
    latest: Row[int | None, datetime, float, float] | None,
    down_since: datetime | None,
) -> SiteSummary:
    return SiteSummary(
        site_id=site.site_id,
        name=site.name,
        country=site.country,
        latitude=site.latitude,
        longitude=site.longitude,
        capacity_kwh=site.capacity_kwh,
        rated_charge_kw=site.rated_charge_kw,
        rated_discharge_kw=site.rated_discharge_kw,
        present=site.present,
        first_seen_at=site.first_seen_at,
        last_seen_at=site.last_seen_at,
        measured_at=latest.measured_at if latest else None,
        soc_pct=latest.soc_pct if latest else None,
        power_kw=latest.power_kw if latest else None,
        unavailable_since=down_since,
    )


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
