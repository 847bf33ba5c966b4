"""Retention: what `prune` deletes, and the background loop that runs it.

Pruned when older than the cutoff: measurements, settled schedule entries (status 2–5)
that ended, with their history, entries' delivered energy (`entry_energy`), ended
availability events, resolved alerts, expired silences, sent or dead outbox messages,
and raw webhook deliveries. Never pruned: open events, firing alerts, pending messages,
entries still InProgress, sites.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
from sqlalchemy import Engine, delete
from sqlalchemy.sql.dml import Delete
from sqlmodel import Session, col, select

from receiver.cellect.clock import Clock
from receiver.cellect.enums import ImplementationStatus
from receiver.runtime import waiting
from receiver.storage.alert_tables import AlertRecord, OutboxMessage, Silence
from receiver.storage.engine import session_factory
from receiver.storage.tables import (
    AvailabilityEventRecord,
    EntryEnergy,
    Measurement,
    ScheduleEntryRecord,
    ScheduleStatusChange,
    WebhookDelivery,
)

logger = logging.getLogger(__name__)

_SETTLED = [int(s) for s in ImplementationStatus if s != ImplementationStatus.IN_PROGRESS]


def _statements(older_than: datetime) -> dict[str, Delete]:
    old_entries = select(ScheduleEntryRecord.id).where(
        col(ScheduleEntryRecord.end_at) < older_than,
        col(ScheduleEntryRecord.status).in_(_SETTLED),
    )
    # Ordered: the history goes before the entries it belongs to.
    return {
        "measurements": delete(Measurement).where(col(Measurement.measured_at) < older_than),
        "schedule_status_changes": delete(ScheduleStatusChange).where(
            col(ScheduleStatusChange.entry_id).in_(old_entries)
        ),
        "schedule_entries": delete(ScheduleEntryRecord).where(
            col(ScheduleEntryRecord.id).in_(old_entries)
        ),
        "entry_energy": delete(EntryEnergy).where(col(EntryEnergy.end_at) < older_than),
        "availability_events": delete(AvailabilityEventRecord).where(
            col(AvailabilityEventRecord.end_at).is_not(None),
            col(AvailabilityEventRecord.end_at) < older_than,
        ),
        "alerts": delete(AlertRecord).where(
            col(AlertRecord.state) == "resolved", col(AlertRecord.ends_at) < older_than
        ),
        "silences": delete(Silence).where(col(Silence.ends_at) < older_than),
        "outbox_messages": delete(OutboxMessage).where(
            col(OutboxMessage.status).in_(["sent", "dead"]),
            col(OutboxMessage.created_at) < older_than,
        ),
        "webhook_deliveries": delete(WebhookDelivery).where(
            col(WebhookDelivery.received_at) < older_than
        ),
    }


def prune(*, session: Session, older_than: datetime) -> dict[str, int]:
    """Delete what retention allows before `older_than`; rows deleted per table. No commit."""
    counts = {}
    for table, statement in _statements(older_than).items():
        counts[table] = max(session.exec(statement).rowcount, 0)
    return counts


def prune_once(engine: Engine, older_than: datetime) -> dict[str, int]:
    """One pruning transaction, committed (blocking: run it in a worker thread)."""
    with session_factory(engine)() as session:
        counts = prune(session=session, older_than=older_than)
        session.commit()
    return counts


async def run_retention(
    engine: Engine,
    *,
    retention_days: int,
    clock: Clock,
    stop: asyncio.Event,
    interval_s: float = 3600.0,
    on_pruned: Callable[[dict[str, int]], None] | None = None,
) -> None:
    """Prune every `interval_s` (clock seconds) until `stop` is set; errors are logged."""
    while not stop.is_set():
        cutoff = clock.now() - timedelta(days=retention_days)
        try:
            counts = await anyio.to_thread.run_sync(prune_once, engine, cutoff)
        except Exception as exc:  # a failed pass must not end retention for good
            logger.warning("retention pass failed: %s", type(exc).__name__)
        else:
            if any(counts.values()):
                logger.info("retention pruned %s", counts)
            if on_pruned is not None:
                on_pruned(counts)
        await waiting.until(clock, clock.now() + timedelta(seconds=interval_s), stop)
