"""The alert engine: firing/resolved state in the database, and notifications into the outbox.

`evaluate(alerts)` diffs the alerts that hold now against the stored firing ones: new
ones start firing (the engine's clock is their `starts_at`; the condition's own
"since" is kept in the annotations), vanished ones resolve. `flush()` applies silences
and inhibition (site alerts are muted while ApiDown fires: their data is stale, not
wrong; those that began before it resolved stay muted one `group_interval` longer,
until fresh polls settle them), asks `grouping.plan_group` what each group (rule +
severity) is due to send, and writes one outbox message per routed target, stamping
the alerts as told in the same transaction, so a crash can neither lose nor duplicate
a notification.

`run(stop)` loops on the injected Clock: evaluate (when given a fleet source), flush,
sleep until the next group is due (at most `tick_s`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from anyio import to_thread
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from receiver.alerting import message
from receiver.alerting.grouping import (
    FIRING,
    RESOLVED,
    Notification,
    Timing,
    plan_group,
    stamp,
)
from receiver.alerting.model import Alert, FleetView, Thresholds
from receiver.alerting.rules import evaluate as evaluate_rules
from receiver.alerting.rules import when
from receiver.storage import alerts as alerts_store
from receiver.storage import repository
from receiver.storage.alert_tables import AlertRecord, Silence
from receiver.storage.alerts import AlertState
from receiver.storage.engine import session_factory

if TYPE_CHECKING:
    from receiver.cellect.clock import Clock
    from receiver.settings import Settings

log = logging.getLogger(__name__)

INHIBITING_RULE = "ApiDown"
Router = Callable[[str], Sequence[str]]  # severity → target ids


class AlertMetrics(Protocol):
    """What the engine reports (receiver.metrics.Metrics satisfies it)."""

    def set_alerts_firing(self, firing: Mapping[tuple[str, str], int]) -> None: ...


def _unchanged(record: AlertRecord | None, alert: Alert) -> bool:
    """True when `record` already stores `alert` as firing, word for word."""
    return (
        record is not None
        and record.state == "firing"
        and record.severity == str(alert.severity)
        and record.labels == alert.labels
        and record.annotations == AlertEngine._annotations(alert)
    )


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


def match_labels(record: AlertRecord) -> dict[str, str]:
    """The labels silences match on: the alert's own, plus `rule` and `severity`."""
    return {**record.labels, "rule": record.rule, "severity": record.severity}


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
    ) -> None:
        self.clock, self.metrics, self.route = clock, metrics, route
        self.timing = timing_from(settings)
        self.thresholds = Thresholds.from_settings(settings)
        self._sessions = session_factory(store)
        self.next_due: datetime | None = None
        self._warned_unrouted: set[str] = set()

    # State.

    def evaluate(self, alerts: Iterable[Alert]) -> None:
        """Record which alerts hold now: new ones fire, vanished ones resolve.

        The difference is worked out from a read, outside any write transaction, and
        only what changed is written — in bulk for new alerts. With thousands of alerts
        firing, a long write transaction would hold SQLite's write lock, and with it
        the webhook writer, for the whole cycle.
        """
        now, current = self.clock.now(), {a.fingerprint: a for a in alerts}
        with self._sessions() as session:
            firing = {r.fingerprint: r for r in repository.list_firing_alerts(session=session)}
            changed = {fp: a for fp, a in current.items() if not _unchanged(firing.get(fp), a)}
            known = alerts_store.known_fingerprints(session=session, fingerprints=changed)
        gone = [record for fp, record in firing.items() if fp not in current]
        fresh = [_new_alert(fp, a) for fp, a in changed.items() if fp not in known]
        if gone or changed:
            with self._sessions() as session, session.begin():
                for record in gone:
                    self._upsert(session, record.fingerprint, record, "resolved", now)
                for fp in known:
                    self._upsert(session, fp, changed[fp], "firing", now)
                alerts_store.insert_firing_alerts(session=session, alerts=fresh, at=now)
        if self.metrics is not None:
            counts = Counter((a.rule, str(a.severity)) for a in current.values())
            self.metrics.set_alerts_firing(counts)

    def evaluate_view(self, view: FleetView) -> list[Alert]:
        """Run the built-in rules over `view` and record the result."""
        alerts = evaluate_rules(view, self.thresholds, self.clock.now())
        self.evaluate(alerts)
        return alerts

    @staticmethod
    def _annotations(alert: Alert) -> dict[str, str]:
        return {**alert.annotations(), "since": when(alert.since)}

    @staticmethod
    def _upsert(
        session: Session, fp: str, alert: Alert | AlertRecord, state: AlertState, now: datetime
    ) -> None:
        notes = AlertEngine._annotations(alert) if isinstance(alert, Alert) else alert.annotations
        repository.upsert_alert(
            session=session, fingerprint=fp, rule=alert.rule, severity=str(alert.severity),
            labels=alert.labels, annotations=notes, state=state, at=now,
        )  # fmt: skip

    # Notifications.

    def flush(self) -> int:
        """Write every notification due now into the outbox; returns how many messages."""
        now, written = self.clock.now(), 0
        with self._sessions() as session, session.begin():
            records = self._candidates(session)
            silences = repository.active_silences(session=session, now=now)
            muted = self._muter(silences, self._inhibition(session, now))
            groups: dict[tuple[str, str], list[AlertRecord]] = defaultdict(list)
            for record in records:
                groups[(record.rule, record.severity)].append(record)
            dues = []
            for members in groups.values():
                plan = plan_group(members, muted, self.timing, now)
                for note in plan.notifications:
                    written += self._enqueue(session, note, now)
                for record in plan.told:
                    record.last_notified_at = stamp(record, now)
                    session.add(record)
                if plan.next_due is not None:
                    dues.append(plan.next_due)
        self.next_due = min(dues, default=None)
        return written

    @staticmethod
    def _candidates(session: Session) -> list[AlertRecord]:
        # Firing alerts, and resolved ones whose notice may still be owed (told before ending).
        owed = select(AlertRecord).where(
            AlertRecord.state == RESOLVED,
            col(AlertRecord.last_notified_at).is_not(None),
            col(AlertRecord.last_notified_at) <= col(AlertRecord.ends_at),
        )
        return [*repository.list_firing_alerts(session=session), *session.exec(owed).all()]

    def _inhibition(self, session: Session, now: datetime) -> datetime | None:
        """Site alerts that started before this moment are inhibited (None: none are).

        While ApiDown fires: all of them. Once it resolves, those that began before its
        end stay muted for one `group_interval` (the next group flush, in Alertmanager's
        terms): the ones the outage caused (DataStale, ...) resolve only when the next
        polls bring fresh data, and must not be told in that gap.
        """
        down = session.exec(select(AlertRecord).where(AlertRecord.rule == INHIBITING_RULE)).first()
        if down is None:
            return None
        if down.state == FIRING:
            return now
        ended = down.ends_at
        if ended is None or now >= ended + self.timing.group_interval:
            return None
        return ended

    @staticmethod
    def _muter(
        silences: Sequence[Silence], inhibited_before: datetime | None
    ) -> Callable[[AlertRecord], bool]:
        def muted(record: AlertRecord) -> bool:
            if (
                inhibited_before is not None
                and "site_id" in record.labels
                and record.starts_at <= inhibited_before
            ):
                return True
            labels = match_labels(record)
            return any(repository.silence_matches(s, labels) for s in silences)

        return muted

    def _enqueue(self, session: Session, note: Notification, now: datetime) -> int:
        targets = self.route(note.severity)
        if not targets and note.group_key not in self._warned_unrouted:
            self._warned_unrouted.add(note.group_key)
            log.warning(
                "no notification target for %s: configure CELLECT_APPRISE_*", note.group_key
            )
        title, body = message.title(note), message.body(note)
        for target in targets:
            repository.enqueue_message(
                session=session, group_key=note.group_key, title=title, body=body,
                tags=[note.severity, target_tag(target), f"kind:{note.kind}"], now=now,
            )  # fmt: skip
        return len(targets)

    # The loop.

    async def run(
        self,
        stop: asyncio.Event,
        fleet: Callable[[], FleetView] | None = None,
        tick_s: float = 5.0,
    ) -> None:
        """Evaluate (if `fleet` is given) and flush until `stop` is set."""
        while not stop.is_set():
            try:
                if fleet is not None:
                    await to_thread.run_sync(lambda: self.evaluate_view(fleet()))
                await to_thread.run_sync(self.flush)
            except Exception:  # a bad cycle (database down) must not end alerting
                log.exception("alert engine cycle failed; retrying")
            await self._sleep(stop, tick_s)

    async def _sleep(self, stop: asyncio.Event, tick_s: float) -> None:
        wake = self.clock.now() + timedelta(seconds=tick_s)
        if self.next_due is not None:
            wake = min(wake, self.next_due)
        sleeper = asyncio.ensure_future(self.clock.sleep_until(wake))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, stopper):
            task.cancel()
