"""Repository functions for raw webhook deliveries: durable, deduplicated, replayable.

`store_webhook_batch` is the webhook receiver's group-commit primitive: the deliveries
of many requests are inserted with one `INSERT … ON CONFLICT (digest) DO NOTHING`
(so a duplicate, even one a concurrent process inserts at the same moment, is stored
once and never applied twice), each new delivery's entries are applied by the status
rules (receiver.storage.status), and the whole batch is committed ONCE — the only
function here that commits. A delivery's digest is the SHA-256 of its payload's
canonical JSON, so the same content with other whitespace, key order or timestamp
spelling counts as a duplicate.
The canonical JSON of a parsed webhook is written directly (`canonical_json`), the same
bytes `json.dumps` makes of its `wire()` dict, without building that dict.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col, select

from receiver.cellect.enums import ImplementationStatus
from receiver.cellect.models import StatusWebhook
from receiver.cellect.timestamps import format_timestamp
from receiver.cellect.webhook import ParsedWebhook, PayloadError, parse_status_webhook
from receiver.storage.dialect import chunks
from receiver.storage.status.apply import apply_observations
from receiver.storage.status.core import DELIVERIES, ENTRIES, HISTORY, CoreWriter
from receiver.storage.status.model import Observation, StatusChange, StatusWriter
from receiver.storage.status.sqlite import SqliteWriter, is_sqlite
from receiver.storage.tables import ScheduleStatusChange, WebhookDelivery
from receiver.storage.types import utc_now

Webhook = StatusWebhook | ParsedWebhook

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IncomingDelivery:
    """One webhook request as received: the raw body and what it parsed to."""

    body: str
    webhook: Webhook
    received_at: datetime
    remote_addr: str | None = None


# No __slots__: a slotted frozen dataclass unpickles through Python-level __setstate__,
# and the webhook writer process sends these back for every delivery.
@dataclass(frozen=True)
class BatchOutcome:
    """What became of one delivery of a batch."""

    digest: str
    duplicate: bool
    delivery_id: int | None = None
    changes: list[StatusChange] = field(default_factory=list)


def canonical_digest(payload: Webhook | Mapping[str, object]) -> str:
    """SHA-256 (hex) of the payload's canonical JSON: sorted keys, no spaces, wire spelling."""
    if isinstance(payload, StatusWebhook | ParsedWebhook):
        canonical = canonical_json(payload)
    else:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def canonical_json(webhook: Webhook) -> str:
    """`json.dumps(webhook.wire(), sort_keys=True, separators=(",", ":"))`, written directly.

    Keys in sorted order (end, start, status; schedule, siteId); timestamps are the
    wire spelling, which never needs JSON escaping.
    """
    entries = ",".join(
        f'{{"end":"{wire_timestamp(e.end)}","start":"{wire_timestamp(e.start)}",'
        f'"status":{int(e.status)}}}'
        for e in webhook.schedule
    )
    return f'{{"schedule":[{entries}],"siteId":{int(webhook.site_id)}}}'


def wire_timestamp(moment: datetime) -> str:
    """`format_timestamp(moment)`, through `isoformat` (C) for the common 4-digit years."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    if moment.year < 1000:  # strftime does not pad such years the way isoformat does
        return format_timestamp(moment)
    if moment.microsecond:
        return moment.isoformat(timespec="milliseconds")[:23] + "Z"
    return moment.isoformat(timespec="seconds")[:19] + "Z"


def store_webhook_batch(
    *,
    session: Session,
    deliveries: Sequence[IncomingDelivery],
    lean: bool | None = None,
    in_doubt: Collection[str] = (),
    tell: Callable[[Session, list[StatusChange], datetime | None], None] | None = None,
) -> list[BatchOutcome]:
    """Store and apply a batch of deliveries, committing once; one outcome per delivery.

    `lean` (default: on SQLite) sends the statements through the sqlite3 connection
    (receiver.storage.status.sqlite); otherwise through SQLAlchemy Core. Same rows
    either way. `tell(session, changes, received)`, if given, runs before the commit
    with the batch's new status changes and when its newest new delivery was received
    (None: only duplicates): one of several replicas writes them to the fleet feed in
    the same transaction. A duplicate whose digest is `in_doubt` (its first delivery's answer was
    lost: the monitor never learned what it changed) carries the changes that first
    delivery recorded, so that the monitor learns them now.
    """
    writer = _writer(session, lean)
    digests = [canonical_digest(delivery.webhook) for delivery in deliveries]
    first_of: dict[str, int] = {}
    for index, digest in enumerate(digests):
        first_of.setdefault(digest, index)
    ids = _insert_new(writer, {d: deliveries[i] for d, i in first_of.items()})
    outcomes = [
        BatchOutcome(digest, False, ids[digest])
        if first_of[digest] == index and digest in ids
        else BatchOutcome(digest, True)
        for index, digest in enumerate(digests)
    ]
    fresh = [(deliveries[i], o) for i, o in enumerate(outcomes) if not o.duplicate]
    for outcome, change in _apply(session, writer, fresh):
        outcome.changes.append(change)
    if tell is not None:
        received = max((d.received_at for d, _ in fresh), default=None)
        tell(session, [c for o in outcomes for c in o.changes], received)
    doubted = {o.digest: o for o in outcomes if o.duplicate and o.digest in in_doubt}
    if doubted:
        for digest, changes in recorded_changes(session=session, digests=list(doubted)).items():
            doubted[digest].changes.extend(changes)
    session.commit()
    return outcomes


def recorded_changes(*, session: Session, digests: Sequence[str]) -> dict[str, list[StatusChange]]:
    """The status changes the stored deliveries `digests` made, by digest, in order.

    From the history rows each delivery left; a row repeating a status its entry already
    had (a webhook confirming a poll) was no change and is left out.
    """
    d, h, e = DELIVERIES.c, HISTORY.c, ENTRIES.c
    query = (
        sa_select(d.digest, h.id, h.entry_id, h.status, h.observed_at, h.source, e.site_id,
                  e.start_at, e.end_at, e.generation)
        .join_from(DELIVERIES, HISTORY, h.delivery_id == d.id)
        .join(ENTRIES, e.id == h.entry_id)
        .where(d.digest.in_(digests))
        .order_by(h.id)
    )  # fmt: skip
    rows = session.execute(query).all()
    history = _statuses_by_entry(session, {row.entry_id for row in rows})
    changes: dict[str, list[StatusChange]] = {}
    for row in rows:
        before = [ImplementationStatus(s) for i, s in history[row.entry_id] if i < row.id]
        if row.status in before:
            continue
        previous = max(before, key=lambda s: s.rank) if before else None
        changes.setdefault(row.digest, []).append(
            StatusChange(row.site_id, row.start_at, row.end_at, previous,
                         ImplementationStatus(row.status), row.source, row.observed_at,
                         row.generation)
        )  # fmt: skip
    return changes


def _statuses_by_entry(session: Session, entry_ids: set[int]) -> dict[int, list[tuple[int, int]]]:
    """(history row id, status) of every history row of `entry_ids`, by entry."""
    h = ScheduleStatusChange
    found: dict[int, list[tuple[int, int]]] = {entry_id: [] for entry_id in entry_ids}
    for chunk in chunks(sorted(entry_ids)):
        query = select(h.entry_id, h.id, h.status).where(col(h.entry_id).in_(chunk))
        for entry_id, row_id, status in session.exec(query).all():
            assert row_id is not None
            found[entry_id].append((row_id, status))
    return found


def _writer(session: Session, lean: bool | None) -> StatusWriter:
    if lean is None:
        lean = is_sqlite(session)
    return SqliteWriter(session) if lean else CoreWriter(session)


def _insert_new(writer: StatusWriter, unique: Mapping[str, IncomingDelivery]) -> dict[str, int]:
    """Insert the deliveries not stored yet; their ids by digest (duplicates are absent)."""
    # Sorted by digest, so concurrent batches take the unique-index locks in one order.
    return writer.insert_deliveries(
        [
            (d.received_at, digest, d.webhook.site_id, d.body, d.remote_addr)
            for digest, d in sorted(unique.items())
        ]
    )


def _apply(
    session: Session,
    writer: StatusWriter,
    fresh: Sequence[tuple[IncomingDelivery, BatchOutcome]],
    *,
    replay: bool = False,
) -> list[tuple[BatchOutcome, StatusChange]]:
    """Apply the entries of new deliveries; each change made, with its delivery's outcome."""
    # One application for all: a few statements, not a few per entry. Entries keep
    # their received order per slot, so the generations see them as sent.
    work = [
        (outcome, Observation(site, e.start, e.end, e.status, at, outcome.delivery_id))
        for delivery, outcome in fresh
        for site, at in [(delivery.webhook.site_id, delivery.received_at)]
        for e in delivery.webhook.schedule
    ]
    changes = apply_observations(
        session=session,
        observations=[seen for _, seen in work],
        source="webhook",
        writer=writer,
        replay=replay,
    )
    return [(work[index][0], change) for index, change in changes]


def deliveries_since(*, session: Session, since: datetime) -> list[WebhookDelivery]:
    """The stored deliveries received at or after `since`, in received order."""
    query = (
        select(WebhookDelivery)
        .where(col(WebhookDelivery.received_at) >= since)
        .order_by(col(WebhookDelivery.received_at), col(WebhookDelivery.id))
    )
    return list(session.exec(query).all())


def replay_deliveries(*, session: Session, since: datetime, now: datetime | None = None) -> int:
    """Re-apply the deliveries received since `since`; returns the status changes it made.

    Each delivery's reports are applied at most once (what a delivery has recorded is
    skipped), so a second replay changes nothing; reports an older version of the
    monitor dropped are applied now. Each replayed delivery gets `replayed_at` (`now`,
    default the wall clock).
    """
    fresh: list[tuple[IncomingDelivery, BatchOutcome]] = []
    for delivery in deliveries_since(session=session, since=since):
        try:
            webhook = parse_status_webhook(json.loads(delivery.body))
        except (ValueError, RecursionError, PayloadError):
            logger.warning("stored webhook delivery %s no longer parses; skipped", delivery.id)
            continue
        outcome = BatchOutcome(delivery.digest, False, delivery.id)
        fresh.append((IncomingDelivery(delivery.body, webhook, delivery.received_at), outcome))
    applied = len(_apply(session, CoreWriter(session), fresh, replay=True))
    ids = [outcome.delivery_id for _, outcome in fresh]
    for chunk in chunks(ids):
        session.exec(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id).in_(chunk))
            .values(replayed_at=now or utc_now())
        )
    return applied
