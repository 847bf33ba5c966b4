"""A site's schedule entries — every generation of every slot — with their status history.

The window selects entries by their start: [start, end) holds the entries starting in it,
which the unique (site_id, start_at, end_at, generation) index serves as one range, and
which is also the key order of a page (start, end, generation: unique per site). Each
entry carries what was planned (its power, from the ExAnte poll) next to what happened:
its furthest status and the mean measured power over its slot (`measured_power_kw`, a
correlated average through the (site_id, measured_at) index) — planned against executed.
The history of a page's entries is read in one more statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, tuple_
from sqlmodel import Session, col

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.dialect import chunks
from receiver.storage.reads.paging import (
    DEFAULT_LIMIT,
    Page,
    check_limit,
    check_window,
    decode_cursor,
    encode_cursor,
    page_of,
)
from receiver.storage.tables import Measurement, ScheduleEntryRecord, ScheduleStatusChange

_KIND = "schedule"


@dataclass(frozen=True)
class StatusStep:
    """One status an entry reported: when the monitor learned it, from where, by which delivery."""

    status: int
    observed_at: datetime
    source: str
    delivery_id: int | None


@dataclass(frozen=True)
class ScheduleEntryView:
    """One entry (one generation of a slot) and its history, oldest step first.

    `statuses` are every status the entry reported (ascending); `unconfirmed` those only
    a poll reported so far. `power_kw` is the planned power (None until a poll told it),
    `measured_power_kw` the mean measured power over [start_at, end_at) (None: no data).
    """

    id: int
    site_id: int
    start_at: datetime
    end_at: datetime
    generation: int
    status: int
    status_at: datetime
    updated_source: str
    power_kw: float | None
    measured_power_kw: float | None
    statuses: tuple[int, ...]
    unconfirmed: tuple[int, ...]
    history: tuple[StatusStep, ...]


def _bits(mask: int) -> tuple[int, ...]:
    return tuple(int(s) for s in ImplementationStatus if mask & (1 << int(s)))


def schedule_page(
    *,
    session: Session,
    site_id: int,
    start: datetime | None = None,
    end: datetime | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ScheduleEntryView]:
    """A site's entries starting in [start, end) (either side open), by start, end and
    generation, each with its status history."""
    check_window(start, end)
    check_limit(limit)
    e, m = ScheduleEntryRecord, Measurement
    measured = (
        select(func.avg(m.power_kw))
        .where(
            col(m.site_id) == col(e.site_id),
            col(m.measured_at) >= col(e.start_at),
            col(m.measured_at) < col(e.end_at),
        )
        .scalar_subquery()
    )
    query = (
        select(e, measured.label("measured"))
        .where(col(e.site_id) == site_id)
        .order_by(col(e.start_at), col(e.end_at), col(e.generation))
        .limit(limit + 1)
    )
    if start is not None:
        query = query.where(col(e.start_at) >= start)
    if end is not None:
        query = query.where(col(e.start_at) < end)
    if after is not None:
        key = decode_cursor(after, _KIND, (datetime, datetime, int))
        query = query.where(tuple_(col(e.start_at), col(e.end_at), col(e.generation)) > key)
    rows = session.execute(query).all()
    history = status_histories(session=session, entry_ids=[row[0].id for row in rows])
    views = [
        ScheduleEntryView(
            id=entry.id,
            site_id=entry.site_id,
            start_at=entry.start_at,
            end_at=entry.end_at,
            generation=entry.generation,
            status=entry.status,
            status_at=entry.status_at,
            updated_source=entry.updated_source,
            power_kw=entry.power_kw,
            measured_power_kw=None if power is None else float(power),
            statuses=_bits(entry.statuses_seen),
            unconfirmed=_bits(entry.statuses_unconfirmed),
            history=tuple(history.get(entry.id, ())),
        )
        for entry, power in rows
    ]
    return page_of(views, limit, lambda v: encode_cursor(_KIND, v.start_at, v.end_at, v.generation))


def status_history(*, session: Session, entry_id: int) -> list[StatusStep]:
    """The status changes of one entry, in the order they were applied."""
    return status_histories(session=session, entry_ids=[entry_id]).get(entry_id, [])


def status_histories(*, session: Session, entry_ids: Sequence[int]) -> dict[int, list[StatusStep]]:
    """The status changes of each of `entry_ids`, in the order they were applied."""
    h = ScheduleStatusChange
    found: dict[int, list[StatusStep]] = {}
    for chunk in chunks(list(entry_ids)):
        query = (
            select(col(h.entry_id), col(h.status), col(h.observed_at), col(h.source))
            .add_columns(col(h.delivery_id))
            .where(col(h.entry_id).in_(chunk))
            .order_by(col(h.id))
        )
        for entry_id, *step in session.execute(query):
            found.setdefault(entry_id, []).append(StatusStep(*step))
    return found


# An entry fails during its slot or soon after (ExPost reports it later): entries that
# started this long before the window are the only ones whose failure can fall in it.
FAILURE_LOOKBACK = timedelta(days=2)


def failures_by_site(
    *, session: Session, site_ids: Sequence[int], since: datetime
) -> dict[int, int]:
    """How many ImplementationFailed reports each of `site_ids` got since `since`.

    Counted from the status history (one step per entry that failed), through the
    (site_id, start_at, …) index of the entries: only entries started after
    `since - FAILURE_LOOKBACK` are looked at, so a page of sites costs a few index ranges
    whatever the retention.
    """
    e, h = ScheduleEntryRecord, ScheduleStatusChange
    found: dict[int, int] = {}
    for chunk in chunks(list(site_ids)):
        query = (
            select(col(e.site_id), func.count())
            .select_from(e)
            .join(h, col(h.entry_id) == col(e.id))
            .where(
                col(e.site_id).in_(chunk),
                col(e.start_at) >= since - FAILURE_LOOKBACK,
                col(h.status) == int(ImplementationStatus.IMPLEMENTATION_FAILED),
                col(h.observed_at) >= since,
            )
            .group_by(col(e.site_id))
        )
        for site_id, count in session.execute(query):
            found[int(site_id)] = int(count)
    return found
