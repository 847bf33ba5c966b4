"""Raw webhook deliveries: stored once by digest, applied once, concurrency-safe, replayable."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from receiver.cellect.models import StatusWebhook
from receiver.storage.deliveries import (
    BatchOutcome,
    IncomingDelivery,
    canonical_digest,
    deliveries_since,
    replay_deliveries,
    store_webhook_batch,
)
from receiver.storage.engine import session_factory
from receiver.storage.reads.schedule import status_history
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange, WebhookDelivery

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _body(site_id: int, *entries: tuple[str, str, int], spaced: bool = False) -> str:
    schedule = [{"start": s, "end": e, "status": status} for s, e, status in entries]
    return json.dumps({"siteId": site_id, "schedule": schedule}, indent=2 if spaced else None)


def _delivery(body: str, received_at: datetime = T0) -> IncomingDelivery:
    webhook = StatusWebhook.model_validate_json(body)
    return IncomingDelivery(body, webhook, received_at, "127.0.0.1")


def _count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


A = ("2024-05-01T13:00:00Z", "2024-05-01T13:15:00Z")
B = ("2024-05-01T13:15:00Z", "2024-05-01T13:30:00Z")


def test_digest_ignores_spelling_but_not_content() -> None:
    """Whitespace, key order and timestamp spelling do not change the digest; content does."""
    plain = StatusWebhook.model_validate_json(_body(1, (*A, 1)))
    spaced = StatusWebhook.model_validate_json(
        _body(1, ("2024-05-01T15:00:00+02:00", "2024-05-01T13:15:00.000Z", 1), spaced=True)
    )
    other = StatusWebhook.model_validate_json(_body(1, (*A, 2)))
    assert canonical_digest(plain) == canonical_digest(spaced) == canonical_digest(plain.wire())
    assert canonical_digest(plain) != canonical_digest(other)
    assert len(canonical_digest(plain)) == 64


def test_duplicates_within_and_across_batches_are_stored_once(session: Session) -> None:
    """A repeated delivery is reported duplicate, stored once, and applied once."""
    first, second = _body(7, (*A, 1), (*B, 1)), _body(7, (*A, 2))
    later = T0 + timedelta(seconds=1)
    outcomes = store_webhook_batch(
        session=session,
        deliveries=[_delivery(first), _delivery(second, later), _delivery(first, later)],
    )
    assert [o.duplicate for o in outcomes] == [False, False, True]
    assert [len(o.changes) for o in outcomes] == [2, 1, 0]
    again = store_webhook_batch(session=session, deliveries=[_delivery(second, T0 + timedelta(1))])
    assert again == [BatchOutcome(outcomes[1].digest, True)]
    assert _count(session, WebhookDelivery) == 2
    assert _count(session, ScheduleStatusChange) == 3
    stored = deliveries_since(session=session, since=T0)
    assert [(d.body, d.site_id, d.remote_addr) for d in stored] == [
        (first, 7, "127.0.0.1"),
        (second, 7, "127.0.0.1"),
    ]


def test_the_batch_reports_the_changes_it_applied(session: Session) -> None:
    """Each new delivery's outcome lists its status changes, previous status included."""
    store_webhook_batch(session=session, deliveries=[_delivery(_body(7, (*A, 1)))])
    (outcome,) = store_webhook_batch(session=session, deliveries=[_delivery(_body(7, (*A, 3)))])
    (change,) = outcome.changes
    assert (change.site_id, change.previous, change.status, change.source) == (7, 1, 3, "webhook")
    entry = session.exec(select(ScheduleEntryRecord)).one()
    history = status_history(session=session, entry_id=entry.id)
    assert [h.delivery_id for h in history] == [1, outcome.delivery_id]


def test_one_delivery_from_ten_threads_is_stored_once(engine: Engine) -> None:
    """Ten sessions storing the same delivery at once leave one row and raise nothing."""
    body = _body(3, (*A, 2), (*B, 3))
    start = threading.Barrier(10, timeout=10)
    factory = session_factory(engine)

    def store(_: int) -> list[BatchOutcome]:
        with factory() as session:
            start.wait()
            return store_webhook_batch(session=session, deliveries=[_delivery(body)])

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = [outcome for batch in pool.map(store, range(10), timeout=30) for outcome in batch]
    assert sorted(o.duplicate for o in results) == [False] + [True] * 9
    with factory() as session:
        assert _count(session, WebhookDelivery) == 1
        assert _count(session, ScheduleEntryRecord) == 2
        assert _count(session, ScheduleStatusChange) == 2


def test_replay_is_idempotent(session: Session) -> None:
    """Replaying stored deliveries rebuilds lost state once; a second replay changes nothing."""
    store_webhook_batch(
        session=session,
        deliveries=[
            _delivery(_body(5, (*A, 1), (*B, 1)), T0),
            _delivery(_body(5, (*A, 2)), T0 + timedelta(minutes=1)),
        ],
    )
    # Lose the applied state, keep the raw deliveries.
    session.exec(ScheduleStatusChange.__table__.delete())  # type: ignore[attr-defined]
    session.exec(ScheduleEntryRecord.__table__.delete())  # type: ignore[attr-defined]
    session.commit()
    replayed_at = T0 + timedelta(hours=1)
    assert replay_deliveries(session=session, since=T0, now=replayed_at) == 3
    session.commit()
    assert replay_deliveries(session=session, since=T0, now=replayed_at) == 0
    session.commit()
    statuses = session.exec(select(ScheduleEntryRecord.status).order_by("start_at")).all()
    assert list(statuses) == [2, 1]
    assert _count(session, ScheduleStatusChange) == 3
    assert {d.replayed_at for d in deliveries_since(session=session, since=T0)} == {replayed_at}
