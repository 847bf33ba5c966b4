"""The alerting engine's state: alerts, silences, the outbox and generated secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from receiver.storage.alert_tables import AlertRecord
from receiver.storage.alerts import (
    FiringAlert,
    NewAlert,
    active_silences,
    create_silence,
    expire_silence,
    firing_alerts,
    insert_firing_alerts,
    known_fingerprints,
    list_firing_alerts,
    resolve_alerts,
    silence_matches,
    upsert_alert,
)
from receiver.storage.outbox import (
    due_messages,
    enqueue_message,
    mark_failed,
    mark_sent,
    pending_count,
)
from receiver.storage.secrets import get_or_create_secret

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_a_secret_is_generated_once(session: Session) -> None:
    """The first call stores the factory's value; later calls return it, never regenerating."""
    first = get_or_create_secret(session=session, name="webhook", factory=lambda: "s1", now=T0)
    session.commit()
    second = get_or_create_secret(session=session, name="webhook", factory=lambda: "s2", now=T0)
    assert (first, second) == ("s1", "s1")


def test_alerts_fire_resolve_and_fire_anew(session: Session) -> None:
    """Firing keeps its start, resolving sets the end, firing again starts a new episode."""
    alert = {"fingerprint": "f1", "rule": "SoCLow", "severity": "warning", "annotations": {}}
    labels = {"site_id": "1"}
    upsert_alert(session=session, **alert, labels=labels, state="firing", at=T0)
    upsert_alert(session=session, **alert, labels=labels, state="firing", at=T0 + MINUTE)
    session.commit()
    (firing,) = list_firing_alerts(session=session)
    assert (firing.starts_at, firing.ends_at, firing.labels) == (T0, None, labels)
    resolved = upsert_alert(
        session=session, **alert, labels=labels, state="resolved", at=T0 + 2 * MINUTE
    )
    assert (resolved.state, resolved.ends_at) == ("resolved", T0 + 2 * MINUTE)
    assert list_firing_alerts(session=session, rule="SoCLow") == []
    again = upsert_alert(
        session=session, **alert, labels=labels, state="firing", at=T0 + 3 * MINUTE
    )
    assert (again.starts_at, again.ends_at, again.id) == (T0 + 3 * MINUTE, None, firing.id)


def test_silences_are_active_in_their_window(session: Session) -> None:
    """A silence mutes from its start until its end (or until expired early)."""
    silence = create_silence(
        session=session,
        matchers={"rule": "SoCLow", "site_id": "1"},
        starts_at=T0,
        ends_at=T0 + 60 * MINUTE,
        created_by="ops",
        comment="maintenance",
    )
    session.commit()
    assert active_silences(session=session, now=T0 - MINUTE) == []
    assert [s.id for s in active_silences(session=session, now=T0)] == [silence.id]
    assert active_silences(session=session, now=T0 + 60 * MINUTE) == []
    assert silence_matches(silence, {"rule": "SoCLow", "site_id": "1", "severity": "warning"})
    assert not silence_matches(silence, {"rule": "SoCLow", "site_id": "2"})
    assert expire_silence(session=session, silence_id=silence.id, now=T0 + MINUTE)
    session.commit()
    assert active_silences(session=session, now=T0 + 2 * MINUTE) == []
    assert not expire_silence(session=session, silence_id=silence.id, now=T0 + 2 * MINUTE)
    with pytest.raises(ValueError, match="end after"):
        create_silence(
            session=session, matchers={}, starts_at=T0, ends_at=T0, created_by="x", comment=""
        )


def test_outbox_due_sent_failed_and_dead(session: Session) -> None:
    """Due messages are pending ones whose time has come; sent ones leave, failures retry."""
    a = enqueue_message(session=session, group_key="g", title="A", body="a", tags=["crit"], now=T0)
    b = enqueue_message(
        session=session, group_key="g", title="B", body="b", tags=[], now=T0 + MINUTE
    )
    session.commit()
    assert pending_count(session=session) == 2
    assert [m.id for m in due_messages(session=session, now=T0, limit=10)] == [a.id]
    assert [m.id for m in due_messages(session=session, now=T0 + MINUTE, limit=1)] == [a.id]
    mark_sent(session=session, message_id=a.id, sent_at=T0 + MINUTE)
    failed = mark_failed(
        session=session, message_id=b.id, next_attempt_at=T0 + 5 * MINUTE, error="x" * 900
    )
    session.commit()
    assert (failed.attempts, len(failed.last_error or "")) == (1, 500)
    assert due_messages(session=session, now=T0 + 2 * MINUTE, limit=10) == []
    assert [m.id for m in due_messages(session=session, now=T0 + 5 * MINUTE, limit=10)] == [b.id]
    dead = mark_failed(
        session=session, message_id=b.id, next_attempt_at=T0, error="gave up", max_attempts=2
    )
    session.commit()
    assert dead.status == "dead"
    assert pending_count(session=session) == 0
    assert due_messages(session=session, now=T0 + 60 * MINUTE, limit=10) == []


def test_thousands_of_new_alerts_are_inserted_in_bulk(session: Session) -> None:
    """A fleet-wide failure's alerts go in at once; known fingerprints are reported, and
    inserting one again leaves the record untouched."""
    fresh = [
        NewAlert(f"fp{i}", "ImplementationFailed", "critical", {"site_id": str(i)}, {"s": "x"})
        for i in range(2500)
    ]
    insert_firing_alerts(session=session, alerts=fresh, at=T0)
    session.commit()
    assert known_fingerprints(session=session, fingerprints={"fp0", "fp2499", "nope"}) == {
        "fp0",
        "fp2499",
    }
    insert_firing_alerts(session=session, alerts=fresh[:1], at=T0 + MINUTE)
    session.commit()
    firing = list_firing_alerts(session=session)
    assert len(firing) == 2500
    assert {a.starts_at for a in firing} == {T0}
    assert firing[0].labels == {"site_id": "0"}


def test_firing_alerts_resolve_in_bulk_and_counts_are_true(session: Session) -> None:
    """Inserts and resolutions report how many rows they changed (PostgreSQL too); the
    firing set reads back as plain values; resolving leaves resolved alerts alone."""
    fresh = [
        NewAlert(f"fp{i}", "ImplementationFailed", "critical", {"site_id": str(i)}, {"s": "x"})
        for i in range(1200)
    ]
    assert insert_firing_alerts(session=session, alerts=fresh, at=T0) == 1200
    assert insert_firing_alerts(session=session, alerts=fresh[:2], at=T0) == 0
    session.commit()
    gone = {f"fp{i}" for i in range(1, 1200)}
    assert resolve_alerts(session=session, fingerprints=gone | {"nope"}, at=T0 + MINUTE) == 1199
    assert resolve_alerts(session=session, fingerprints=gone, at=T0 + 2 * MINUTE) == 0
    session.commit()
    assert firing_alerts(session=session) == {
        "fp0": FiringAlert("ImplementationFailed", "critical", {"site_id": "0"}, {"s": "x"})
    }
    [resolved] = [a for a in session.exec(select(AlertRecord)) if a.fingerprint == "fp7"]
    assert (resolved.state, resolved.ends_at) == ("resolved", T0 + MINUTE)
