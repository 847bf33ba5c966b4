"""The text of a notification: a title a phone can show, a body a human can act on.

Firing: `[FIRING:2] SiteUnavailable (critical)` then, per alert, its summary, since
when, and what to check, new alerts marked, and the rule's runbook (docs/alerts.md).
Resolved: `[RESOLVED] …` with when each ended. Plain text: every Apprise service
renders it.
"""

from __future__ import annotations

from receiver.alerting.grouping import FIRING, Notification
from receiver.alerting.rules import when
from receiver.storage.alert_tables import AlertRecord


def title(note: Notification) -> str:
    if note.kind == FIRING:
        return f"[FIRING:{len(note.alerts)}] {note.rule} ({note.severity})"
    return f"[RESOLVED] {note.rule} ({note.severity})"


def _entry(record: AlertRecord, note: Notification) -> str:
    notes = record.annotations
    mark = "NEW " if record.fingerprint in note.new else ""
    lines = [f"- {mark}{notes.get('summary', record.rule)}"]
    if note.kind == FIRING:
        lines.append(f"  {notes.get('description', '')}".rstrip())
    elif record.ends_at is not None:
        lines.append(f"  Resolved at {when(record.ends_at)} (since {notes.get('since', '?')}).")
    return "\n".join(lines)


def body(note: Notification) -> str:
    head = (
        f"{len(note.alerts)} alert(s) firing"
        if note.kind == FIRING
        else f"{len(note.alerts)} alert(s) resolved"
    )
    entries = "\n".join(_entry(r, note) for r in note.alerts)
    runbooks = sorted(url for r in note.alerts if (url := r.annotations.get("runbook_url")))
    runbook = f"\n\nRunbook: {runbooks[0]}" if note.kind == FIRING and runbooks else ""
    return (
        f"{head} — {note.rule}, severity {note.severity}\n\n{entries}{runbook}\n\n— cellect-monitor"
    )
