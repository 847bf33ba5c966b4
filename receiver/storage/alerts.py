"""Repository functions for the alerting engine's state: alerts and silences.

Keyword-only; nothing here commits (the caller owns the transaction).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Table, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from receiver.storage.alert_tables import AlertRecord, Silence
from receiver.storage.dialect import chunks, insert_for

AlertState = Literal["firing", "resolved"]
_ALERTS: Table = AlertRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NewAlert:
    """An alert to record for the first time."""

    fingerprint: str
    rule: str
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class FiringAlert:
    """What is stored for a firing alert: enough to tell whether it is recorded word for word."""

    rule: str
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def upsert_alert(
    *,
    session: Session,
    fingerprint: str,
    rule: str,
    severity: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    state: AlertState,
    at: datetime,
) -> AlertRecord:
    """Record that the alert `fingerprint` is firing or resolved as of `at`.

    A firing alert keeps its `starts_at`; one that fires again after resolving starts
    anew; resolving sets `ends_at`.
    """
    alert = session.exec(select(AlertRecord).where(AlertRecord.fingerprint == fingerprint)).first()
    if alert is None:
        alert = AlertRecord(
            fingerprint=fingerprint, rule=rule, severity=severity, state=state, starts_at=at
        )
        alert.ends_at = at if state == "resolved" else None
    elif state != alert.state:
        # Firing again after resolving is a new episode; resolving closes the current one.
        if state == "firing":
            alert.starts_at = at
        alert.ends_at = at if state == "resolved" else None
    alert.rule, alert.severity, alert.state = rule, severity, state
    alert.labels, alert.annotations = dict(labels), dict(annotations)
    session.add(alert)
    session.flush()
    return alert


def list_firing_alerts(*, session: Session, rule: str | None = None) -> list[AlertRecord]:
    """The firing alerts (of one rule, if given), oldest first."""
    query = select(AlertRecord).where(AlertRecord.state == "firing")
    if rule is not None:
        query = query.where(AlertRecord.rule == rule)
    return list(session.exec(query.order_by(col(AlertRecord.starts_at), col(AlertRecord.id))).all())


def create_silence(
    *,
    session: Session,
    matchers: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
) -> Silence:
    """A silence muting alerts whose labels match every matcher, in [starts_at, ends_at)."""
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    silence = Silence(
        matchers=dict(matchers),
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=created_by,
        comment=comment,
    )
    session.add(silence)
    session.flush()
    return silence


def active_silences(*, session: Session, now: datetime) -> list[Silence]:
    """The silences in force at `now`."""
    query = (
        select(Silence)
        .where(col(Silence.starts_at) <= now, col(Silence.ends_at) > now)
        .order_by(col(Silence.id))
    )
    return list(session.exec(query).all())


def expire_silence(*, session: Session, silence_id: int, now: datetime) -> bool:
    """End a silence at `now`; False when there is no such silence or it has already ended."""
    silence = session.get(Silence, silence_id)
    if silence is None or silence.ends_at <= now:
        return False
    silence.ends_at = max(now, silence.starts_at)
    session.add(silence)
    return True


def silence_matches(silence: Silence, labels: Mapping[str, str]) -> bool:
    """Whether the silence's every `label → value` matcher holds for `labels`."""
    return all(labels.get(name) == value for name, value in silence.matchers.items())


def known_fingerprints(*, session: Session, fingerprints: Collection[str]) -> set[str]:
    """Which of `fingerprints` already have a record (firing or resolved)."""
    known: set[str] = set()
    for chunk in chunks(sorted(fingerprints)):
        query = select(AlertRecord.fingerprint).where(col(AlertRecord.fingerprint).in_(chunk))
        known.update(session.exec(query).all())
    return known


def firing_alerts(*, session: Session) -> dict[str, FiringAlert]:
    """The firing alerts by fingerprint, read as plain rows in one statement.

    No ORM entities: with thousands firing, building and tracking an `AlertRecord` each
    costs several times the query itself.
    """
    query = core_select(
        _ALERTS.c.fingerprint,
        _ALERTS.c.rule,
        _ALERTS.c.severity,
        _ALERTS.c.labels,
        _ALERTS.c.annotations,
    ).where(_ALERTS.c.state == "firing")
    rows = session.connection().execute(query)
    return {
        fp: FiringAlert(rule, severity, labels, notes) for fp, rule, severity, labels, notes in rows
    }


def resolve_alerts(*, session: Session, fingerprints: Collection[str], at: datetime) -> int:
    """Resolve those of `fingerprints` still firing as of `at`; returns how many did.

    A few multi-row UPDATEs rather than an ORM round trip per alert: a failure storm
    ending resolves thousands at once.
    """
    resolved = 0
    for chunk in chunks(sorted(fingerprints)):
        stmt = (
            update(_ALERTS)
            .where(_ALERTS.c.fingerprint.in_(chunk), _ALERTS.c.state == "firing")
            .values(state="resolved", ends_at=at)
        )
        resolved += max(session.connection().execute(stmt).rowcount, 0)
    return resolved


def insert_firing_alerts(*, session: Session, alerts: Sequence[NewAlert], at: datetime) -> int:
    """Insert alerts never seen before, firing as of `at`, in a few multi-row statements.

    A fleet-wide failure fires thousands of alerts in one cycle; one ORM round trip each
    would hold the database's write lock (and the webhook writer) for seconds. Returns
    how many were inserted (a fingerprint already recorded is left alone).
    """
    rows = [
        {
            "fingerprint": a.fingerprint,
            "rule": a.rule,
            "severity": a.severity,
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "state": "firing",
            "starts_at": at,
        }
        for a in alerts
    ]
    if not rows:
        return 0
    # executemany ("insertmanyvalues"): multi-row statements from one cached compilation;
    # a literal multi-row VALUES was compiled anew for every cycle, and that compiling
    # was most of a storm's alerting time. RETURNING counts what was really inserted.
    table = _ALERTS
    stmt = (
        insert_for(session, table)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(table.c.fingerprint)
    )
    return len(session.connection().execute(stmt, rows).all())
