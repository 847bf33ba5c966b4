"""The alert engine: firing/resolved state in the database, and notifications into the outbox.

`evaluate_view(view)` runs the built-in rules and holds each new condition for its
catalogue hold (`for`, pending.py) before it counts; `evaluate(alerts)` diffs the alerts
that hold now against the stored firing ones: new ones start firing (the engine's clock
is their `starts_at`; the condition's own "since" is kept in the annotations), vanished
ones resolve. `flush()` applies silences and inhibition (site alerts are muted while
ApiDown fires: their data is stale, not wrong; those that began before it resolved stay
muted one `group_interval` longer, until fresh polls settle them), asks
`grouping.plan_group` what each group (rule + severity) is due to send, and writes one
outbox message per routed target, stamping the alerts as told in the same transaction,
so a crash can neither lose nor duplicate a notification.

A cycle costs what changed, not what fires: in a failure storm thousands of alerts
fire for an hour, and the engine shares the process with webhook ingest.

- The engine keeps a mirror of the firing set (fingerprint → rule, severity, labels,
  annotations), loaded with one plain query when first needed and updated only after
  a write commits; a cycle that raises drops it, to be reloaded. This is sound because
  the engine is the process's only writer of alert state (retention deletes resolved
  alerts only; the CLI writes silences, never alerts); should a write find the
  database not as mirrored (an UPDATE or INSERT touching fewer rows than expected),
  the mirror is dropped too. `evaluate` diffs against it and writes nothing when
  nothing changed.
- `flush()` does its database work only when it may have something to do: the last
  `evaluate` changed more than adding new firing alerts (resolutions, re-fires, new
  annotations), a group is due (`next_due`), `mark_dirty()` was called (a silence was
  made or expired), it never ran, or a tick (`tick_s`, 5 s) has passed since the last
  full flush. New alerts alone do not force one: their message waits `group_wait` or
  `group_interval` anyway, so a new alert only brings `next_due` forward to a
  `group_wait` from now (the flush then works out its group's due time); the tick bounds
  any other delay to about one tick (silences made by the CLI, another process). A
  skipped flush returns 0.

The loop that runs the engine is `receiver.alerting.loop.AlertLoop`.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from receiver.alerting import message
from receiver.alerting.grouping import (
    RESOLVED,
    Notification,
    Timing,
    plan_group,
    stamp,
)
from receiver.alerting.inhibit import inhibition, muter
from receiver.alerting.model import Alert, FleetView, Thresholds
from receiver.alerting.pending import Pending
from receiver.alerting.rules import evaluate as evaluate_rules
from receiver.alerting.rules import when
from receiver.storage import alerts as alerts_store
from receiver.storage.alert_tables import AlertRecord
from receiver.storage.alerts import (
    FiringAlert,
    active_silences,
    list_firing_alerts,
    upsert_alert,
)
from receiver.storage.engine import session_factory
from receiver.storage.outbox import enqueue_message

if TYPE_CHECKING:
    from receiver.cellect.clock import Clock
    from receiver.settings import Settings

log = logging.getLogger(__name__)

TICK_S = 5.0  # the alert loop's tick: a full flush runs at least this often
# A full flush is owed once this share of a tick has passed: the loop wakes a tick after
# the previous cycle began, and its flush may come a few milliseconds earlier within it.
TICK_JITTER = 0.1
Router = Callable[[str], Sequence[str]]  # severity → target ids


class AlertMetrics(Protocol):
    """What the engine reports (receiver.metrics.registry.Metrics satisfies it)."""

    def set_alerts_firing(self, firing: Mapping[tuple[str, str], int]) -> None: ...

    def rule_error(self, rule: str) -> None: ...


def _unchanged(stored: FiringAlert | None, alert: Alert) -> bool:
    """True when `stored` (a firing alert as recorded) is `alert`, word for word."""
    return (
        stored is not None
        and stored.severity == str(alert.severity)
        and stored.labels == alert.labels
        and stored.annotations == AlertEngine._annotations(alert)
    )


def _stored(alert: Alert) -> FiringAlert:
    """What recording `alert` as firing stores (the mirror's copy of it)."""
    notes = AlertEngine._annotations(alert)
    return FiringAlert(alert.rule, str(alert.severity), dict(alert.labels), notes)


def _new_alert(fp: str, alert: Alert) -> alerts_store.NewAlert:
    return alerts_store.NewAlert(
        fp, alert.rule, str(alert.severity), alert.labels, AlertEngine._annotations(alert)
    )


def timing_from(settings: Settings) -> Timing:
    return Timing(
        group_wait=timedelta(seconds=settings.group_wait_s),
        group_interval=timedelta(seconds=settings.group_interval_s),
        repeat_interval=timedelta(seconds=settings.repeat_interval_s),
    )


def target_tag(target_id: str) -> str:
    return f"target:{target_id}"


class AlertEngine:
    """Alertmanager's semantics over the stored alerts; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        settings: Settings,
        store: Engine,
        metrics: AlertMetrics | None = None,
        *,
        route: Router,
        tick_s: float = TICK_S,
    ) -> None:
        self.clock, self.metrics, self.route = clock, metrics, route
        self.timing = timing_from(settings)
        self.thresholds = Thresholds.from_settings(settings)
        self.pending = Pending()
        self.tick_s = tick_s
        self._sessions = session_factory(store)
        self.next_due: datetime | None = None
        self._warned_unrouted: set[str] = set()
        self._firing: dict[str, FiringAlert] | None = None  # the mirror; None: load it
        # Alerts firing when this engine started (a restart): they may not resolve until
        # `settled()` says the monitor judges on fresh evidence (what it polled since),
        # not on an empty start — no false all-clear after a restart.
        self._carried: set[str] | None = None
        self._broken_rules: set[str] = set()  # logged once each
        self.settled: Callable[[], bool] = lambda: True
        self._dirty = True  # a full flush is owed whatever the clock says
        self._flushed_at: datetime | None = None  # the clock at the last full flush
        # One of several replicas: checks, inside each write, that this replica still
        # holds the `alerts` lease (receiver.coordination: LeaseLost rolls it back).
        self.fence: Callable[[Session], None] = lambda session: None

    def lead_anew(self) -> None:
        """This replica has just become the alert leader (again): what it remembers of
        the alert state may be another leader's past, so it reads the state afresh, and
        the alerts firing then may resolve only once `settled()` says so (as after a
        restart). Pending conditions start their holds over."""
        self._firing, self._carried = None, None
        self.pending = Pending()
        self._dirty, self._flushed_at, self.next_due = True, None, None

    # State.

    def evaluate(self, alerts: Iterable[Alert]) -> None:
        """Record which alerts hold now: new ones fire, vanished ones resolve.

        The difference is worked out against the mirror of the firing set, outside any
        write transaction, and only what changed is written — in bulk for new and
        vanished alerts. With thousands of alerts firing, a long write transaction would
        hold SQLite's write lock, and with it the webhook writer, for the whole cycle.
        """
        now, current = self.clock.now(), {a.fingerprint: a for a in alerts}
        try:
            self._record(current, now)
        except BaseException:
            self._firing = None  # the write may or may not have happened: read it again
            raise
        if self.metrics is not None:
            firing = self._firing.values() if self._firing is not None else current.values()
            counts = Counter((a.rule, str(a.severity)) for a in firing)
            self.metrics.set_alerts_firing(counts)

    def evaluate_view(self, view: FleetView) -> list[Alert]:
        """Run the built-in rules over `view`, hold new conditions for their `for`, and
        record the result (the alerts that fire)."""
        now = self.clock.now()
        held = evaluate_rules(view, self.thresholds, now, on_error=self._rule_failed)
        alerts = self.pending.admit(held, now, firing=self._mirror())
        self.evaluate(alerts)
        return alerts

    def _rule_failed(self, rule: str, exc: BaseException) -> None:
        """A rule raised on some site: counted every time, logged once per rule."""
        if self.metrics is not None:
            self.metrics.rule_error(rule)
        if rule not in self._broken_rules:
            self._broken_rules.add(rule)
            log.error("alert rule %s failed (%s: %s); the other rules and sites go on",
                      rule, type(exc).__name__, exc)  # fmt: skip

    def firing(self) -> list[FiringAlert]:
        """The alerts firing now, as last recorded (the engine's mirror; read from the
        database only when the mirror was dropped)."""
        return list(self._mirror().values())

    def _mirror(self) -> dict[str, FiringAlert]:
        if self._firing is None:
            with self._sessions() as session:
                self._firing = alerts_store.firing_alerts(session=session)
            if self._carried is None:
                self._carried = set(self._firing)
        return self._firing

    def _held(self) -> set[str]:
        """The carried alerts that may not resolve yet (none once the monitor settled)."""
        if self._carried and self.settled():
            log.info("judging on fresh data now: alerts from before the start may resolve")
            self._carried = set()
        return self._carried or set()

    def _record(self, current: Mapping[str, Alert], now: datetime) -> None:
        """Write the difference between `current` and the mirror, then update the mirror."""
        firing = self._mirror()
        changed = {fp: a for fp, a in current.items() if not _unchanged(firing.get(fp), a)}
        held = self._held()
        gone = [fp for fp in firing if fp not in current and fp not in held]
        if not changed and not gone:
            return
        known = self._recorded([fp for fp in changed if fp not in firing])
        upserts = [fp for fp in changed if fp in firing or fp in known]
        fresh = [
            _new_alert(fp, a) for fp, a in changed.items() if fp not in firing and fp not in known
        ]
        with self._sessions() as session, session.begin():
            self.fence(session)
            resolved = alerts_store.resolve_alerts(session=session, fingerprints=gone, at=now)
            for fp in upserts:
                self._upsert(session, fp, changed[fp], now)
            inserted = alerts_store.insert_firing_alerts(session=session, alerts=fresh, at=now)
        if upserts or gone:
            self._dirty = True  # resolutions, re-fires, new annotations: flush at once
        if fresh:
            # A new alert's first message is due a group_wait from now at the earliest (the
            # flush works out the rest): look then, not up to a tick later.
            due = now + self.timing.group_wait
            self.next_due = due if self.next_due is None else min(self.next_due, due)
        if (resolved, inserted) != (len(gone), len(fresh)):
            log.warning("alert records were not as the engine remembered them; reloading")
            self._firing, self._dirty = None, True
            return
        for fp in gone:
            del firing[fp]
        firing.update((fp, _stored(a)) for fp, a in changed.items())

    def _recorded(self, fingerprints: Sequence[str]) -> set[str]:
        """Which of `fingerprints` (not firing) have a record: they fire again, not anew."""
        if not fingerprints:
            return set()
        with self._sessions() as session:
            return alerts_store.known_fingerprints(session=session, fingerprints=fingerprints)

    @staticmethod
    def _annotations(alert: Alert) -> dict[str, str]:
        return {**alert.annotations(), "since": when(alert.since)}

    @staticmethod
    def _upsert(session: Session, fp: str, alert: Alert, now: datetime) -> None:
        """Record `alert` as firing over its existing record (resolved, or worded otherwise)."""
        upsert_alert(
            session=session, fingerprint=fp, rule=alert.rule, severity=str(alert.severity),
            labels=alert.labels, annotations=AlertEngine._annotations(alert), state="firing",
            at=now,
        )  # fmt: skip

    # Notifications.

    def mark_dirty(self) -> None:
        """Have the next `flush()` run in full (e.g. a silence was made or expired).

        Safe to call from any thread: a flush clears the mark before it reads.
        """
        self._dirty = True

    def flush(self) -> int:
        """Write every notification due now into the outbox; returns how many messages.

        Skipped (0) when nothing can be due: see the module docstring.
        """
        now = self.clock.now()
        if not self._flush_owed(now):
            return 0
        self._dirty = False  # before reading: a mark_dirty() meanwhile brings another flush
        try:
            written, due = self._flush(now)
        except BaseException:
            self._dirty, self._firing = True, None
            raise
        self.next_due, self._flushed_at = due, now
        return written

    def _flush_owed(self, now: datetime) -> bool:
        """Whether a flush at `now` may have anything to do."""
        last = self._flushed_at
        if self._dirty or last is None:
            return True
        if self.next_due is not None and self.next_due <= now:
            return True
        tick = timedelta(seconds=self.tick_s * (1 - TICK_JITTER))
        return not last <= now < last + tick  # (a clock set back counts as a tick too)

    def _flush(self, now: datetime) -> tuple[int, datetime | None]:
        """The flush itself: the notifications written, and when a flush is next due.

        Due is when a group is, and also when a silence ends or the inhibition after
        ApiDown lifts: muted alerts may then be told with nothing else changed.
        """
        written = 0
        with self._sessions() as session, session.begin():
            self.fence(session)
            records = self._candidates(session)
            silences = active_silences(session=session, now=now)
            inhibited_before, inhibited_until = inhibition(session, now, self.timing.group_interval)
            muted = muter(silences, inhibited_before)
            groups: dict[tuple[str, str], list[AlertRecord]] = defaultdict(list)
            for record in records:
                groups[(record.rule, record.severity)].append(record)
            dues = [s.ends_at for s in silences]
            if inhibited_until is not None:
                dues.append(inhibited_until)
            for members in groups.values():
                plan = plan_group(members, muted, self.timing, now)
                for note in plan.notifications:
                    written += self._enqueue(session, note, now)
                for record in plan.told:
                    record.last_notified_at = stamp(record, now)
                    session.add(record)
                if plan.next_due is not None:
                    dues.append(plan.next_due)
        return written, min(dues, default=None)

    @staticmethod
    def _candidates(session: Session) -> list[AlertRecord]:
        # Firing alerts, and resolved ones whose notice may still be owed (told before ending).
        owed = select(AlertRecord).where(
            AlertRecord.state == RESOLVED,
            col(AlertRecord.last_notified_at).is_not(None),
            col(AlertRecord.last_notified_at) <= col(AlertRecord.ends_at),
        )
        return [*list_firing_alerts(session=session), *session.exec(owed).all()]

    def _enqueue(self, session: Session, note: Notification, now: datetime) -> int:
        targets = self.route(note.severity)
        if not targets and note.group_key not in self._warned_unrouted:
            self._warned_unrouted.add(note.group_key)
            log.warning(
                "no notification target for %s: configure CELLECT_APPRISE_*", note.group_key
            )
        title, body = message.title(note), message.body(note)
        for target in targets:
            enqueue_message(
                session=session, group_key=note.group_key, title=title, body=body,
                tags=[note.severity, target_tag(target), f"kind:{note.kind}"], now=now,
            )  # fmt: skip
        return len(targets)
