"""Retention prunes old settled history only, and its background loop runs on the Clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from receiver.cellect.clock import Clock
from receiver.cellect.enums import AvailabilityStatus, DowntimeType, EventReason, EventSource
from receiver.cellect.enums import ImplementationStatus as S
from receiver.cellect.models import AvailabilityEvent, SiteInformation, StatusWebhook
from receiver.storage.alert_tables import AlertRecord, OutboxMessage, Silence
from receiver.storage.alerts import create_silence, upsert_alert
from receiver.storage.deliveries import IncomingDelivery, store_webhook_batch
from receiver.storage.events import upsert_availability_events
from receiver.storage.outbox import enqueue_message, mark_sent
from receiver.storage.retention import prune, run_retention
from receiver.storage.sites import record_measurements, upsert_sites
from receiver.storage.status import Observation, apply_observations, writer_for
from receiver.storage.tables import (
    AvailabilityEventRecord,
    Measurement,
    ScheduleEntryRecord,
    ScheduleStatusChange,
    WebhookDelivery,
)

OLD = datetime(2024, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2024, 2, 1, tzinfo=UTC)
NEW = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _event(event_id: int, start: datetime, end: datetime | None) -> AvailabilityEvent:
    return AvailabilityEvent(
        event_id=event_id, site_id=1, site_name="One", country="ES", latitude=0, longitude=0,
        availability_status=AvailabilityStatus.NOT_AVAILABLE, type=DowntimeType.PLANNED,
        reason=EventReason.MAINTENANCE, source=EventSource.CELLECT, start_date=start, end_date=end,
    )  # fmt: skip


def _populate(session: Session, site: SiteInformation) -> None:
    upsert_sites(session=session, sites=[site], seen_at=OLD)
    for at in (OLD, NEW):
        record_measurements(session=session, sites=[site], measured_at=at)
        # One settled and one still-InProgress entry at each age.
        polled = [
            Observation(1, at + offset * HOUR, at + (offset + 1) * HOUR, S(status), at)
            for offset, status in ((0, 2), (1, 1))
        ]
        apply_observations(
            session=session, observations=polled, source="poll", writer=writer_for(session)
        )
        alert = {"rule": "R", "severity": "warning", "labels": {}, "annotations": {}}
        upsert_alert(
            session=session, fingerprint=f"resolved-{at}", **alert, state="resolved", at=at
        )
        upsert_alert(session=session, fingerprint=f"firing-{at}", **alert, state="firing", at=at)
        sent = enqueue_message(session=session, group_key="g", title="t", body="b", tags=[], now=at)
        mark_sent(session=session, message_id=sent.id, sent_at=at)
        enqueue_message(session=session, group_key="g", title="t", body="b", tags=[], now=at)
        create_silence(session=session, matchers={}, starts_at=at, ends_at=at + HOUR,
                       created_by="ops", comment="")  # fmt: skip
        webhook = StatusWebhook(site_id=at.month, schedule=[])
        body = webhook.model_dump_json(by_alias=True)
        store_webhook_batch(session=session, deliveries=[IncomingDelivery(body, webhook, at)])
    upsert_availability_events(
        session=session, site_id=1, seen_at=NEW,
        events=[_event(1, OLD, OLD + HOUR), _event(2, OLD, None), _event(3, NEW, NEW + HOUR)],
    )  # fmt: skip
    session.commit()


def _count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def test_prune_deletes_only_what_retention_allows(
    session: Session, make_site: type[SiteInformation]
) -> None:
    """Old settled rows go; open events, firing alerts, pending messages and InProgress stay."""
    _populate(session, make_site(1))
    counts = prune(session=session, older_than=CUTOFF)
    session.commit()
    assert counts == {
        "measurements": 1,
        "schedule_status_changes": 1,
        "schedule_entries": 1,
        "entry_energy": 0,
        "availability_events": 1,
        "alerts": 1,
        "silences": 1,
        "outbox_messages": 1,
        "webhook_deliveries": 1,
    }
    assert _count(session, Measurement) == 1
    assert _count(session, ScheduleEntryRecord) == 3
    assert _count(session, ScheduleStatusChange) == 3
    assert sorted(session.exec(select(AvailabilityEventRecord.event_id)).all()) == [2, 3]
    assert _count(session, AlertRecord) == 3
    assert _count(session, Silence) == 1
    assert _count(session, OutboxMessage) == 3
    assert _count(session, WebhookDelivery) == 1
    assert prune(session=session, older_than=CUTOFF) == dict.fromkeys(counts, 0)


@pytest.mark.anyio
async def test_the_retention_loop_prunes_on_the_clock(engine: Engine) -> None:
    """The loop prunes at once, again after each interval of clock time, and stops on request."""
    clock = Clock.frozen(NEW)
    stop = asyncio.Event()
    passes: list[dict[str, int]] = []
    pruned = anyio.Event()

    def on_pruned(counts: dict[str, int]) -> None:
        passes.append(counts)
        pruned.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: run_retention(
                    engine, retention_days=30, clock=clock, stop=stop, interval_s=3600,
                    on_pruned=on_pruned,
                )
            )  # fmt: skip
            await pruned.wait()
            pruned = anyio.Event()
            clock.advance(3600)
            await pruned.wait()
            stop.set()
    assert len(passes) == 2
    assert all(count == 0 for counts in passes for count in counts.values())


def test_a_delivery_with_no_entries_is_still_stored(session: Session) -> None:
    """An empty schedule is a delivery like any other: kept for audit, nothing applied."""
    webhook = StatusWebhook(site_id=4, schedule=[])
    (outcome,) = store_webhook_batch(
        session=session, deliveries=[IncomingDelivery("{}", webhook, NEW)]
    )
    assert (outcome.duplicate, outcome.changes) == (False, [])
    assert _count(session, WebhookDelivery) == 1
