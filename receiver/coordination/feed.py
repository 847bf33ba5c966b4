"""The fleet feed: how each replica learns what the others changed in the fleet picture.

Every replica keeps the whole fleet picture in memory (the alert leader judges all of it;
each bucket owner exports its sites' series from it). A replica changes it from its own
work — the webhooks it stores, the buckets it polls, the portfolio if it holds that
lease — and writes each change as a row of `fleet_feed` **in the same transaction** as
the change's own rows: a change rolled back (a fenced write refused) leaves no row, and a
committed one always has its row. The others read the rows and apply them.

Reading in commit order without skipping a row: ids (a sequence) are handed out when
rows are inserted, not when they commit, so "every id above the last one read" would miss
a row whose transaction commits after a later one's. Each row carries its transaction id
instead (`xid`, `pg_current_xact_id()`), and a reader takes only rows of transactions
older than the oldest still running (`pg_snapshot_xmin(pg_current_snapshot())`): those
have all ended, so no row can appear behind the cursor `(xid, id)` any more. The price: a
long transaction anywhere on the server holds the feed back until it ends (the lease
rounds and the monitor's writes are short).

Kinds and bodies (JSON; times as integer microseconds since the epoch):

- `status`: status changes (webhooks stored, polls) — `{"c": [[site, start, end,
  previous, status, source, observed, generation, latest], ...], "w": received}` where
  `w` is when webhooks were last received in that batch (WebhookSilence), or null;
- `plan`: sites whose planned schedule changed — `{"s": {site: [[start, end, status,
  kW], ...]}}` (rows of three, without the power, from older versions: the reader keeps
  the powers it had);
- `events`: an events poll of some sites — `{"at": t, "s": {site: [event, ...]}}`;
- `portfolio`: a PortfolioOverview — `{"at": t, "s": [site information, ...]}`;
- `energy`: entries' delivered against planned energy, computed by their site's owner —
  `{"e": [[site, start, end, generation, planned_kwh, delivered_kwh], ...]}`
  (receiver.storage.energy; delivered null when nothing was measured).

NOTIFY `cellect_feed` (payload: the writer's replica id) at commit wakes the readers;
without it they read every `READ_EVERY_S` all the same. On SQLite (one replica) nothing
is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, text, tuple_
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import AvailabilityEvent, SiteInformation, TimeSeriesResult
from receiver.storage.coordination_tables import FeedRow
from receiver.storage.energy import EnergyRow
from receiver.storage.status.model import StatusChange

FEED: Table = FeedRow.__table__  # type: ignore[attr-defined]
CHANNEL = "cellect_feed"
READ_EVERY_S = 1.0  # without a NOTIFY, how often a replica reads the feed
KEEP = timedelta(minutes=30)  # rows older than this are pruned (a replica that was
# away longer restores its picture from the history at start, not from the feed)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
Cursor = tuple[int, int]  # (xid, id) of the last row read


def micros(moment: datetime) -> int:
    """`moment` as integer microseconds since the epoch (exact, unlike a float)."""
    return (moment - _EPOCH) // _MICRO


def moment(us: int) -> datetime:
    return _EPOCH + us * _MICRO


def postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Writing.


def publish(*, session: Session, replica: str, kind: str, body: Mapping[str, Any]) -> None:
    """Add a row to the feed in `session`'s transaction, and NOTIFY at its commit."""
    text_body = json.dumps(body, separators=(",", ":"))
    session.execute(insert(FEED).values(replica=replica, kind=kind, body=text_body))
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": replica}
    )


def status_body(changes: Sequence[StatusChange], received: datetime | None) -> dict[str, Any]:
    rows = [
        [
            c.site_id,
            micros(c.start),
            micros(c.end),
            None if c.previous is None else int(c.previous),
            int(c.status),
            c.source,
            micros(c.observed_at),
            c.generation,
            None if c.latest is None else int(c.latest),
        ]
        for c in changes
    ]
    return {"c": rows, "w": None if received is None else micros(received)}


def plan_body(plans: Mapping[int, Sequence[TimeSeriesResult]]) -> dict[str, Any]:
    return {
        "s": {
            str(site_id): [
                [
                    micros(r.start_date),
                    micros(r.end_date),
                    int(r.implementation_status),
                    r.ess_power_ac,
                ]
                for r in results
            ]
            for site_id, results in plans.items()
        }
    }


def events_body(at: datetime, events: Mapping[int, Sequence[AvailabilityEvent]]) -> dict[str, Any]:
    return {
        "at": micros(at),
        "s": {str(site): [e.wire() for e in happened] for site, happened in events.items()},
    }


def portfolio_body(at: datetime, sites: Sequence[SiteInformation]) -> dict[str, Any]:
    return {"at": micros(at), "s": [s.wire() for s in sites]}


def energy_body(rows: Sequence[EnergyRow]) -> dict[str, Any]:
    rows_out = [
        [r.site_id, micros(r.start), micros(r.end), r.generation, r.planned_kwh, r.delivered_kwh]
        for r in rows
    ]
    return {"e": rows_out}


# Reading.


@dataclass(frozen=True)
class StatusEntry:
    changes: list[StatusChange]
    received: datetime | None  # webhooks received then (None: a poll's changes)


@dataclass(frozen=True)
class PlanEntry:
    plans: dict[int, dict[tuple[datetime, datetime], ImplementationStatus]]
    # Each slot's planned kW, by site (a site absent: the row carried no powers).
    powers: dict[int, dict[tuple[datetime, datetime], float]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventsEntry:
    at: datetime
    events: dict[int, list[AvailabilityEvent]]


@dataclass(frozen=True)
class PortfolioEntry:
    at: datetime
    sites: list[SiteInformation]


@dataclass(frozen=True)
class EnergyEntry:
    # (site, the entry's end, planned kWh, delivered kWh)
    rows: list[tuple[int, datetime, float, float | None]]


Entry = StatusEntry | PlanEntry | EventsEntry | PortfolioEntry | EnergyEntry


def _status(body: dict[str, Any]) -> StatusEntry:
    changes = [
        StatusChange(
            site_id=site,
            start=moment(start),
            end=moment(end),
            previous=None if previous is None else ImplementationStatus(previous),
            status=ImplementationStatus(status),
            source=source,
            observed_at=moment(observed),
            generation=generation,
            latest=None if latest is None else ImplementationStatus(latest),
        )
        for site, start, end, previous, status, source, observed, generation, latest in body["c"]
    ]
    received = body.get("w")
    return StatusEntry(changes, None if received is None else moment(received))


def _plan(body: dict[str, Any]) -> PlanEntry:
    plans: dict[int, dict[tuple[datetime, datetime], ImplementationStatus]] = {}
    powers: dict[int, dict[tuple[datetime, datetime], float]] = {}
    for site, rows in body["s"].items():
        slots = plans[int(site)] = {}
        kilowatts: dict[tuple[datetime, datetime], float] = {}
        for row in rows:
            slot = (moment(row[0]), moment(row[1]))
            slots[slot] = ImplementationStatus(row[2])
            if len(row) > 3:
                kilowatts[slot] = float(row[3])
        if len(kilowatts) == len(slots):
            powers[int(site)] = kilowatts
    return PlanEntry(plans, powers)


def decode(kind: str, text_body: str) -> Entry | None:
    """The entry of one feed row (None: a kind this version does not know)."""
    body = json.loads(text_body)
    if kind == "status":
        return _status(body)
    if kind == "plan":
        return _plan(body)
    if kind == "events":
        return EventsEntry(
            moment(body["at"]),
            {
                int(site): [AvailabilityEvent.model_validate(e) for e in rows]
                for site, rows in body["s"].items()
            },
        )
    if kind == "portfolio":
        sites = [SiteInformation.model_validate(s) for s in body["s"]]
        return PortfolioEntry(moment(body["at"]), sites)
    if kind == "energy":
        return EnergyEntry([(row[0], moment(row[2]), row[4], row[5]) for row in body["e"]])
    return None


def start_cursor(session: Session) -> Cursor:
    """Where a replica starting now begins to read: at the oldest transaction still
    running, so that nothing committed after the picture it restores is missed (a few
    changes it restored may be applied again; applying a change twice is harmless but
    for the site counters of those few)."""
    return (_horizon(session), 0)


def _horizon(session: Session) -> int:
    """Transactions older than this one have all ended."""
    query = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    xmin: int = session.execute(query).scalar_one()
    return xmin


def read(
    *, session: Session, cursor: Cursor, skip: str, limit: int = 200
) -> tuple[list[Entry], Cursor, bool]:
    """Feed rows after `cursor` whose transactions have ended, oldest first, but those
    written by the replica `skip` (ourselves): the entries, the new cursor, and whether
    more rows may wait (the limit was reached)."""
    horizon = _horizon(session)
    c = FEED.c
    query = (
        select(c.xid, c.id, c.replica, c.kind, c.body)
        .where(tuple_(c.xid, c.id) > tuple_(*cursor), c.xid < horizon)
        .order_by(c.xid, c.id)
        .limit(limit)
    )
    rows = session.execute(query).all()
    entries: list[Entry] = []
    for xid, row_id, replica, kind, body in rows:
        cursor = (xid, row_id)
        if replica == skip:
            continue
        entry = decode(kind, body)
        if entry is not None:
            entries.append(entry)
    return entries, cursor, len(rows) == limit


def prune(*, session: Session, keep: timedelta = KEEP) -> int:
    """Delete rows older than `keep` (by the database's clock); how many."""
    cutoff = func.clock_timestamp() - text(f"interval '{int(keep.total_seconds())} seconds'")
    result = session.execute(delete(FEED).where(FEED.c.at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def sites_of(entries: Iterable[Entry]) -> set[int]:
    """The sites the entries name (for tests and logs)."""
    found: set[int] = set()
    for entry in entries:
        if isinstance(entry, StatusEntry):
            found.update(c.site_id for c in entry.changes)
        elif isinstance(entry, PortfolioEntry):
            found.update(s.site_id for s in entry.sites)
        elif isinstance(entry, EnergyEntry):
            found.update(row[0] for row in entry.rows)
        else:
            found.update(entry.plans if isinstance(entry, PlanEntry) else entry.events)
    return found
