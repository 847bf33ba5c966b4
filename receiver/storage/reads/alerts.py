"""Alerts (firing, resolved, or both) and the notifications sent about an alert's group.

Firing alerts come newest first by `starts_at`; resolved ones by `ends_at` (the ones that
resolved most recently first); "all" by `starts_at`. Each order ends on the id, so it is
stable, and the cursor names the state it was made for. The alerts and outbox tables
hold what retention keeps (resolved alerts and sent messages are pruned after the
retention period), so these reads stay small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, tuple_
from sqlmodel import Session, col

from receiver.storage.alert_tables import AlertRecord, OutboxMessage
from receiver.storage.reads.paging import (
    DEFAULT_LIMIT,
    Page,
    ReadError,
    check_limit,
    decode_cursor,
    encode_cursor,
    page_of,
)

AlertFilter = Literal["firing", "resolved", "all"]
ALERT_FILTERS: tuple[AlertFilter, ...] = ("firing", "resolved", "all")


@dataclass(frozen=True)
class AlertView:
    """One alert instance: its rule, labels, annotations, state and episode."""

    id: int
    rule: str
    severity: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    last_notified_at: datetime | None
    fingerprint: str


@dataclass(frozen=True)
class NotificationView:
    """One outbox message: what was (or will be) sent, and how its delivery went."""

    id: int
    created_at: datetime
    group_key: str
    title: str
    body: str
    tags: list[Any] = field(default_factory=list)
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None


def _view(a: AlertRecord) -> AlertView:
    assert a.id is not None
    return AlertView(
        id=a.id, rule=a.rule, severity=a.severity, state=a.state, labels=dict(a.labels),
        annotations=dict(a.annotations), starts_at=a.starts_at, ends_at=a.ends_at,
        last_notified_at=a.last_notified_at, fingerprint=a.fingerprint,
    )  # fmt: skip


def _notification(m: OutboxMessage) -> NotificationView:
    assert m.id is not None
    return NotificationView(
        id=m.id, created_at=m.created_at, group_key=m.group_key, title=m.title, body=m.body,
        tags=list(m.tags), status=m.status, attempts=m.attempts,
        next_attempt_at=m.next_attempt_at, last_error=m.last_error, sent_at=m.sent_at,
    )  # fmt: skip


def alert_page(
    *,
    session: Session,
    state: AlertFilter = "firing",
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[AlertView]:
    """The alerts in `state`, most recent first (see the module's docstring for the order)."""
    if state not in ALERT_FILTERS:
        raise ReadError("state", f"state must be one of {', '.join(ALERT_FILTERS)}")
    check_limit(limit)
    a = AlertRecord
    moment = col(a.ends_at) if state == "resolved" else col(a.starts_at)
    query = select(a).order_by(moment.desc(), col(a.id).desc()).limit(limit + 1)
    if state != "all":
        query = query.where(col(a.state) == state)
    kind = f"alerts-{state}"
    if after is not None:
        key = decode_cursor(after, kind, (datetime, int))
        query = query.where(tuple_(moment, col(a.id)) < key)
    views = [_view(r) for r in session.execute(query).scalars()]
    return page_of(views, limit, lambda v: encode_cursor(kind, _moment(v, state), v.id))


def _moment(view: AlertView, state: AlertFilter) -> datetime:
    """The time an alert is ordered by in the list `state`."""
    return (view.ends_at or view.starts_at) if state == "resolved" else view.starts_at


def alert(*, session: Session, alert_id: int) -> AlertView | None:
    """One alert by id; None when unknown (or pruned)."""
    found = session.get(AlertRecord, alert_id)
    return None if found is None else _view(found)


def notification_page(
    *,
    session: Session,
    group_key: str,
    since: datetime | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[NotificationView]:
    """The messages queued for a group (rule/severity) since `since`, most recent first."""
    check_limit(limit)
    o = OutboxMessage
    query = (
        select(o)
        .where(col(o.group_key) == group_key)
        .order_by(col(o.created_at).desc(), col(o.id).desc())
        .limit(limit + 1)
    )
    if since is not None:
        query = query.where(col(o.created_at) >= since)
    if after is not None:
        key = decode_cursor(after, "notifications", (datetime, int))
        query = query.where(tuple_(col(o.created_at), col(o.id)) < key)
    views = [_notification(m) for m in session.execute(query).scalars()]
    return page_of(views, limit, lambda v: encode_cursor("notifications", v.created_at, v.id))
