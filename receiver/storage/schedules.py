"""Repository functions for schedule entries and their status history.

A status only moves forward by `ImplementationStatus.rank` (1 → 2/3 → 4/5): whatever
order webhooks and polls arrive in, an older or equal-rank status never undoes a newer
one, which also makes re-applying anything (a replay, a re-poll) harmless. Every change
appends a `ScheduleStatusChange` row. Nothing here commits: the caller owns the
transaction. Each entry row is locked (`FOR UPDATE` on PostgreSQL; SQLite serialises
writers) between reading its status and writing the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.dialect import insert_for
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange

Source = Literal["webhook", "poll"]
SOURCES: tuple[Source, ...] = ("webhook", "poll")
_PLANNED = (int(ImplementationStatus.IN_PROGRESS), int(ImplementationStatus.IMPLEMENTED))


class _Observed(NamedTuple):
    site_id: int
    start: datetime
    end: datetime
    status: ImplementationStatus
    observed_at: datetime
    source: Source
    power_kw: float | None
    delivery_id: int | None


# No __slots__: a slotted frozen dataclass unpickles through Python-level __setstate__,
# and the webhook writer process sends these back for every delivery.
@dataclass(frozen=True)
class StatusChange:
    """One status change applied to one entry (`previous` None: the entry was new)."""

    site_id: int
    start: datetime
    end: datetime
    previous: ImplementationStatus | None
    status: ImplementationStatus
    source: Source
    observed_at: datetime


def apply_entry(
    *,
    session: Session,
    site_id: int,
    start: datetime,
    end: datetime,
    status: int,
    observed_at: datetime,
    source: Source,
    power_kw: float | None = None,
    delivery_id: int | None = None,
) -> StatusChange | None:
    """Apply one observed status to an entry; the change made, or None when there was none."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    seen = _Observed(
        site_id,
        start,
        end,
        ImplementationStatus(status),
        observed_at,
        source,
        power_kw,
        delivery_id,
    )
    stmt = insert_for(session, ScheduleEntryRecord).values(
        site_id=site_id,
        start_at=start,
        end_at=end,
        power_kw=power_kw,
        status=int(seen.status),
        status_at=observed_at,
        updated_source=source,
    )
    inserted = session.exec(
        stmt.on_conflict_do_nothing(index_elements=["site_id", "start_at", "end_at"]).returning(
            col(ScheduleEntryRecord.id)
        )
    ).scalar_one_or_none()
    if inserted is not None:
        _append_history(session, inserted, seen)
        return StatusChange(site_id, start, end, None, seen.status, source, observed_at)
    return _advance(session, seen)


def _advance(session: Session, seen: _Observed) -> StatusChange | None:
    entry_id, current, power = session.exec(
        select(ScheduleEntryRecord.id, ScheduleEntryRecord.status, ScheduleEntryRecord.power_kw)
        .where(
            ScheduleEntryRecord.site_id == seen.site_id,
            ScheduleEntryRecord.start_at == seen.start,
            ScheduleEntryRecord.end_at == seen.end,
        )
        .with_for_update()
    ).one()
    assert entry_id is not None
    changes: dict[str, object] = {}
    # Polls carry the power webhooks lack: fill it in even when the status stays.
    if seen.power_kw is not None and seen.power_kw != power:
        changes["power_kw"] = seen.power_kw
    previous = ImplementationStatus(current)
    moved = seen.status.rank > previous.rank
    if moved:
        changes.update(
            status=int(seen.status), status_at=seen.observed_at, updated_source=seen.source
        )
    if changes:
        session.exec(
            update(ScheduleEntryRecord)
            .where(col(ScheduleEntryRecord.id) == entry_id)
            .values(**changes)
        )
    if not moved:
        return None
    _append_history(session, entry_id, seen)
    return StatusChange(
        seen.site_id, seen.start, seen.end, previous, seen.status, seen.source, seen.observed_at
    )


def _append_history(session: Session, entry_id: int, seen: _Observed) -> None:
    session.exec(
        insert_for(session, ScheduleStatusChange).values(
            entry_id=entry_id,
            status=int(seen.status),
            observed_at=seen.observed_at,
            source=seen.source,
            delivery_id=seen.delivery_id,
        )
    )


def apply_entry_status(
    *,
    session: Session,
    site_id: int,
    start: datetime,
    end: datetime,
    status: int,
    observed_at: datetime,
    source: Source,
    power_kw: float | None = None,
    delivery_id: int | None = None,
) -> bool:
    """Apply one observed status to an entry; True when its status changed (or it is new)."""
    change = apply_entry(
        session=session,
        site_id=site_id,
        start=start,
        end=end,
        status=status,
        observed_at=observed_at,
        source=source,
        power_kw=power_kw,
        delivery_id=delivery_id,
    )
    return change is not None


def planned_horizon(*, session: Session, site_id: int, now: datetime) -> datetime | None:
    """The end of the latest planned (InProgress/Implemented) entry ending after `now`."""
    query = select(func.max(ScheduleEntryRecord.end_at)).where(
        ScheduleEntryRecord.site_id == site_id,
        col(ScheduleEntryRecord.status).in_(_PLANNED),
        col(ScheduleEntryRecord.end_at) > now,
    )
    return session.exec(query).one()


def planned_horizons(*, session: Session, now: datetime) -> dict[int, datetime]:
    """`planned_horizon` of every site that has one, in one query."""
    query = (
        select(ScheduleEntryRecord.site_id, func.max(ScheduleEntryRecord.end_at))
        .where(col(ScheduleEntryRecord.status).in_(_PLANNED), col(ScheduleEntryRecord.end_at) > now)
        .group_by(col(ScheduleEntryRecord.site_id))
    )
    return {site_id: end for site_id, end in session.exec(query).all()}


def entries_in_progress_near_start(
    *, session: Session, now: datetime, within_s: float
) -> list[ScheduleEntryRecord]:
    """Entries still InProgress that start within `within_s` of `now` (or already started)."""
    query = (
        select(ScheduleEntryRecord)
        .where(
            ScheduleEntryRecord.status == int(ImplementationStatus.IN_PROGRESS),
            col(ScheduleEntryRecord.start_at) <= now + timedelta(seconds=within_s),
            col(ScheduleEntryRecord.end_at) > now,
        )
        .order_by(col(ScheduleEntryRecord.start_at), col(ScheduleEntryRecord.site_id))
    )
    return list(session.exec(query).all())


def status_counts(*, session: Session) -> dict[tuple[int, int], int]:
    """How many entries each (site_id, status) has."""
    query = select(ScheduleEntryRecord.site_id, ScheduleEntryRecord.status, func.count()).group_by(
        col(ScheduleEntryRecord.site_id), col(ScheduleEntryRecord.status)
    )
    return {(site_id, status): count for site_id, status, count in session.exec(query).all()}


def entries_in_range(
    *, session: Session, site_id: int, start: datetime, end: datetime
) -> list[ScheduleEntryRecord]:
    """One site's entries overlapping [start, end), by start."""
    query = (
        select(ScheduleEntryRecord)
        .where(
            ScheduleEntryRecord.site_id == site_id,
            col(ScheduleEntryRecord.start_at) < end,
            col(ScheduleEntryRecord.end_at) > start,
        )
        .order_by(col(ScheduleEntryRecord.start_at))
    )
    return list(session.exec(query).all())


def status_history(*, session: Session, entry_id: int) -> list[ScheduleStatusChange]:
    """The status changes of one entry, in the order they were applied."""
    query = (
        select(ScheduleStatusChange)
        .where(ScheduleStatusChange.entry_id == entry_id)
        .order_by(col(ScheduleStatusChange.id))
    )
    return list(session.exec(query).all())
