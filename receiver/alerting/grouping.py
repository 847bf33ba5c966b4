"""When a group of alerts is due for a notification: Alertmanager's timing, as a pure function.

Alerts are grouped by rule + severity. For each group, `plan_group` reads the stored
alerts (`AlertRecord`s, whose `last_notified_at` is the notification log) and decides:

- resolved alerts that were notified while firing get a resolved notice at once;
- a group with new firing alerts and no notified firing alert waits `group_wait` from
  when the engine first saw its oldest new alert (`starts_at`), so alerts that appear
  together arrive in one message;
- a group already notified waits `group_interval` after its last notification before
  telling about new alerts;
- an unchanged group is repeated only after `repeat_interval`.

Muted alerts (silenced, or inhibited while ApiDown fires) are left out; a muted alert
that resolves gets no notice, and counts as told.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.storage.alert_tables import AlertRecord

FIRING = "firing"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Timing:
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass
class Notification:
    """One message to send about a group: firing (with what is new) or resolved."""

    group_key: str
    rule: str
    severity: str
    kind: str  # FIRING | RESOLVED
    alerts: list[AlertRecord]
    new: frozenset[str] = frozenset()  # fingerprints first told in this message


@dataclass
class GroupPlan:
    notifications: list[Notification]
    told: list[AlertRecord]  # to stamp last_notified_at = now
    next_due: datetime | None  # when this group next needs a look (None: nothing pending)


def group_key(rule: str, severity: str) -> str:
    return f"{rule}/{severity}"


def told_at(record: AlertRecord) -> datetime | None:
    """When this episode of the alert was last told (an alert firing again starts anew)."""
    notified = record.last_notified_at
    return notified if notified is not None and notified >= record.starts_at else None


def pending_resolved(record: AlertRecord) -> bool:
    """Resolved, told while firing, and the resolved notice not yet written."""
    notified, ended = told_at(record), record.ends_at
    # `<=`: an alert may be told and resolve in the same instant (see `stamp`).
    return (
        record.state == RESOLVED
        and notified is not None
        and ended is not None
        and notified <= ended
    )


def stamp(record: AlertRecord, now: datetime) -> datetime:
    """The `last_notified_at` to record once `record` is told at `now`.

    A resolved notice must leave the record strictly after its `ends_at`, or it would
    still look owed when it resolved in the very instant it was first told.
    """
    if record.state == RESOLVED and record.ends_at is not None and now <= record.ends_at:
        return record.ends_at + timedelta(microseconds=1)
    return now


def _due_at(firing: list[AlertRecord], timing: Timing) -> datetime | None:
    told = [t for t in map(told_at, firing) if t is not None]
    new = [r.starts_at for r in firing if told_at(r) is None]
    if new and not told:
        return min(new) + timing.group_wait
    if new:
        return max(told) + timing.group_interval
    if told:
        return min(told) + timing.repeat_interval
    return None


def plan_group(
    records: Sequence[AlertRecord],
    muted: Callable[[AlertRecord], bool],
    timing: Timing,
    now: datetime,
) -> GroupPlan:
    """What to send now for one group (all `records` share rule and severity)."""
    firing = [r for r in records if r.state == FIRING and not muted(r)]
    ended = [r for r in records if pending_resolved(r)]
    told = [r for r in ended if muted(r)]  # muted: no notice, but settled
    notes = []
    resolved = [r for r in ended if not muted(r)]
    if resolved:
        notes.append(_note(resolved[0], RESOLVED, resolved))
        told.extend(resolved)
    due = _due_at(firing, timing)
    if due is not None and due <= now:
        new = frozenset(r.fingerprint for r in firing if told_at(r) is None)
        notes.append(_note(firing[0], FIRING, firing, new))
        told.extend(firing)
        due = now + timing.repeat_interval
    return GroupPlan(notes, told, due)


def _note(
    first: AlertRecord, kind: str, alerts: list[AlertRecord], new: frozenset[str] = frozenset()
) -> Notification:
    ordered = sorted(alerts, key=lambda r: (r.starts_at, r.fingerprint))
    key = group_key(first.rule, first.severity)
    return Notification(key, first.rule, first.severity, kind, ordered, new)
