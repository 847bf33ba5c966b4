"""What the database knows of the fleet's present: the live picture a monitor starts from.

The fleet picture (receiver.fleet.picture) lives in memory and is fed by polls and webhooks as
they come. A monitor that starts — after a restart, an upgrade, a crash — reads it back
from the history here, so that its first alert cycle judges what was known before it
stopped (a failure five minutes old still holds its hour; a site at 5 % is still low;
an open outage is still open) rather than an empty fleet that resolves everything.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from receiver.cellect.enums import (
    AvailabilityStatus,
    DowntimeType,
    EventReason,
    EventSource,
    ImplementationStatus,
)
from receiver.cellect.models import AvailabilityEvent, SiteInformation
from receiver.storage.alert_tables import AlertRecord
from receiver.storage.tables import (
    AvailabilityEventRecord,
    Measurement,
    ScheduleEntryRecord,
    ScheduleStatusChange,
    Site,
    WebhookDelivery,
)

FAILED = int(ImplementationStatus.IMPLEMENTATION_FAILED)
Slot = tuple[datetime, datetime]


@dataclass(frozen=True)
class StoredSite:
    """A site as last polled: its master data with the latest measurement."""

    info: SiteInformation
    measured_at: datetime | None
    present: bool


@dataclass(frozen=True)
class StoredFailure:
    site_id: int
    start: datetime
    end: datetime
    at: datetime  # when the monitor learned of it


@dataclass
class StoredFleet:
    sites: list[StoredSite] = field(default_factory=list)
    open_events: dict[int, list[AvailabilityEvent]] = field(default_factory=dict)
    events_seen: dict[int, datetime] = field(default_factory=dict)  # last events poll, by site
    # Each slot still ahead (or running) and the status of its newest entry.
    planned: dict[int, dict[Slot, ImplementationStatus]] = field(default_factory=dict)
    # The planned kW of those slots whose newest entry has one (from an ExAnte poll).
    powers: dict[int, dict[Slot, float]] = field(default_factory=dict)
    scheduled_sites: set[int] = field(default_factory=set)  # sites with any entry at all
    failures: list[StoredFailure] = field(default_factory=list)  # oldest first
    last_webhook_at: datetime | None = None
    # The last sign of a monitor at work (a measurement or a delivery stored): what a
    # monitor starting after downtime reads the executed schedules back from.
    last_activity: datetime | None = None
    # When each site's ImplementationFailed alert last resolved (sites whose alert
    # fires now, or never fired, are absent): what was told already.
    failure_alerts_resolved: dict[int, datetime] = field(default_factory=dict)


def load_fleet(
    *,
    session: Session,
    now: datetime,
    failure_hold: timedelta,
    site_ids: Collection[int] | None = None,
) -> StoredFleet:
    """The fleet's present as stored: sites, open events, plans, recent failures — of
    every site, or of `site_ids` only (sites a portfolio poll names for the first time)."""
    sites = [s for s in _sites(session) if site_ids is None or s.info.site_id in site_ids]
    names = {s.info.site_id: s.info for s in sites}
    last_measured = session.exec(select(func.max(Measurement.measured_at))).one()
    last_webhook = session.exec(select(func.max(WebhookDelivery.received_at))).one()
    last_active = max((m for m in (last_measured, last_webhook) if m), default=None)
    planned, powers = _planned(session, now)
    stored = StoredFleet(
        sites=sites,
        open_events=_open_events(session, now, names),
        events_seen=_events_seen(session),
        planned=planned,
        powers=powers,
        scheduled_sites=set(session.exec(select(ScheduleEntryRecord.site_id).distinct()).all()),
        # Failures whose hold still ran when the monitor was last at work (see restore).
        failures=_failures(session, min(now, last_active or now) - failure_hold),
        last_webhook_at=last_webhook,
        last_activity=last_active,
        failure_alerts_resolved=_failure_alerts_resolved(session),
    )
    return stored if site_ids is None else _only(stored, site_ids)


def _only(stored: StoredFleet, site_ids: Collection[int]) -> StoredFleet:
    return StoredFleet(
        sites=stored.sites,
        open_events={k: v for k, v in stored.open_events.items() if k in site_ids},
        events_seen={k: v for k, v in stored.events_seen.items() if k in site_ids},
        planned={k: v for k, v in stored.planned.items() if k in site_ids},
        powers={k: v for k, v in stored.powers.items() if k in site_ids},
        scheduled_sites=stored.scheduled_sites & set(site_ids),
        failures=[f for f in stored.failures if f.site_id in site_ids],
        last_webhook_at=None,
    )


def _sites(session: Session) -> list[StoredSite]:
    latest = (
        select(Measurement.site_id, func.max(Measurement.measured_at).label("at"))
        .group_by(col(Measurement.site_id))
        .subquery()
    )
    query = (
        select(Site, Measurement)
        .join(latest, col(Site.site_id) == latest.c.site_id, isouter=True)
        .join(
            Measurement,
            and_(
                col(Measurement.site_id) == latest.c.site_id,
                col(Measurement.measured_at) == latest.c.at,
            ),
            isouter=True,
        )
    )
    return [_stored_site(site, measured) for site, measured in session.exec(query).all()]


def _stored_site(site: Site, measured: Measurement | None) -> StoredSite:
    info = SiteInformation(
        site_id=site.site_id,
        site_name=site.name,
        country=site.country,
        latitude=site.latitude,
        longitude=site.longitude,
        ess_soc=measured.soc_pct if measured else 0.0,
        ess_power=measured.power_kw if measured else 0.0,
        ess_installed_energy_capacity=site.capacity_kwh,
        ess_power_ac_rated_discharge=site.rated_discharge_kw,
        ess_power_ac_rated_charge=site.rated_charge_kw,
    )
    return StoredSite(info, measured.measured_at if measured else None, site.present)


def _open_events(
    session: Session, now: datetime, sites: dict[int, SiteInformation]
) -> dict[int, list[AvailabilityEvent]]:
    e = AvailabilityEventRecord
    query = select(e).where(
        col(e.availability_status) == int(AvailabilityStatus.NOT_AVAILABLE),
        (col(e.end_at).is_(None)) | (col(e.end_at) > now),
    )
    found: dict[int, list[AvailabilityEvent]] = {}
    for record in session.exec(query).all():
        info = sites.get(record.site_id)
        found.setdefault(record.site_id, []).append(_event(record, info))
    return found


def _events_seen(session: Session) -> dict[int, datetime]:
    e = AvailabilityEventRecord
    query = select(e.site_id, func.max(e.last_seen_at)).group_by(col(e.site_id))
    return {site_id: seen for site_id, seen in session.exec(query).all()}


def _event(record: AvailabilityEventRecord, info: SiteInformation | None) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=record.event_id,
        site_id=record.site_id,
        site_name=info.site_name if info else f"site {record.site_id}",
        country=info.country if info else "",
        latitude=info.latitude if info else 0.0,
        longitude=info.longitude if info else 0.0,
        availability_status=AvailabilityStatus(record.availability_status),
        type=DowntimeType(record.downtime_type),
        reason=EventReason(record.reason),
        source=EventSource(record.source),
        start_date=record.start_at,
        end_date=record.end_at,
    )


def _planned(
    session: Session, now: datetime
) -> tuple[dict[int, dict[Slot, ImplementationStatus]], dict[int, dict[Slot, float]]]:
    e = ScheduleEntryRecord
    # SQLAlchemy's select: SQLModel's is typed for at most four columns.
    query = (
        sa_select(e.site_id, e.start_at, e.end_at, e.status, e.power_kw)  # type: ignore[call-overload]
        .where(col(e.end_at) > now)
        .order_by(col(e.site_id), col(e.start_at), col(e.end_at), col(e.generation))
    )
    planned: dict[int, dict[Slot, ImplementationStatus]] = {}
    powers: dict[int, dict[Slot, float]] = {}
    for site_id, start, end, status, power in session.execute(query).all():
        # Ordered by generation: the newest entry of a slot is written last.
        planned.setdefault(site_id, {})[(start, end)] = ImplementationStatus(status)
        kilowatts = powers.setdefault(site_id, {})
        if power is None:
            kilowatts.pop((start, end), None)
        else:
            kilowatts[(start, end)] = power
    return planned, powers


def _failure_alerts_resolved(session: Session) -> dict[int, datetime]:
    query = select(AlertRecord).where(
        AlertRecord.rule == "ImplementationFailed", col(AlertRecord.state) == "resolved"
    )
    found: dict[int, datetime] = {}
    for record in session.exec(query).all():
        site = record.labels.get("site_id", "")
        if site.isdigit() and record.ends_at is not None:
            found[int(site)] = record.ends_at
    return found


def _failures(session: Session, since: datetime) -> list[StoredFailure]:
    h, e = ScheduleStatusChange, ScheduleEntryRecord
    query = (
        select(e.site_id, e.start_at, e.end_at, h.observed_at)
        .join(e, col(e.id) == h.entry_id)
        .where(col(h.status) == FAILED, col(h.observed_at) >= since)
        .order_by(col(h.observed_at), col(h.id))
    )
    rows: Sequence[tuple[int, datetime, datetime, datetime]] = session.exec(query).all()
    return [StoredFailure(site_id, start, end, at) for site_id, start, end, at in rows]
