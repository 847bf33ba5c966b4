"""The delivery worker: sends what the engine wrote into the outbox, until each target accepts.

Each outbox message is addressed to one target (tag `target:<id>`, see engine.py), so
one failing target never makes another receive a message twice. A message is taken
with a lease: its `next_attempt_at` moves `lease` ahead and that is committed before
the send, so no second worker (another replica on PostgreSQL) takes it meanwhile and
no transaction stays open across the network call (SQLite would hold its write lock).
Then it is marked `sent` at once, or retried after an exponential backoff, or `dead`
after `max_attempts`. A crash between a send and its commit resends that one message
after the lease: at-least-once, never twice after a recorded success.

Outcomes (`sent`, `failed` = will retry, `dead`) and the pending depth go to a metrics
callback; stored errors are short and secret-free (notifier.SendResult).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from anyio import to_thread
from sqlalchemy import Engine

from receiver.alerting.notify.notifier import Notifier, SendResult, scrub
from receiver.runtime import waiting
from receiver.storage.alert_tables import OutboxMessage
from receiver.storage.engine import session_factory
from receiver.storage.outbox import due_messages, mark_failed, mark_sent, pending_count

if TYPE_CHECKING:
    from receiver.cellect.clock import Clock

log = logging.getLogger(__name__)


class DeliveryMetrics(Protocol):
    """What the worker reports (receiver.metrics.registry.Metrics satisfies it)."""

    def notification(self, outcome: str) -> None: ...

    def set_outbox_pending(self, count: int) -> None: ...


@dataclass(frozen=True)
class Backoff:
    first_s: float = 10.0
    max_s: float = 3600.0
    max_attempts: int = 20
    lease_s: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failure: 10 s, 20 s, 40 s, … capped."""
        return timedelta(seconds=min(self.max_s, self.first_s * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Envelope:
    """What a send needs, read out of the message row (detached from its session)."""

    id: int
    target_id: str | None
    kind: str
    title: str
    body: str
    attempts: int


def _envelope(message: OutboxMessage) -> Envelope:
    tags = [str(t) for t in message.tags]
    target = next((t.removeprefix("target:") for t in tags if t.startswith("target:")), None)
    kind = next((t.removeprefix("kind:") for t in tags if t.startswith("kind:")), "firing")
    severity = tags[0] if tags else "info"
    assert message.id is not None
    return Envelope(
        message.id, target, "resolved" if kind == "resolved" else severity,
        message.title, message.body, message.attempts,
    )  # fmt: skip


class DeliveryWorker:
    """Drains the outbox through a `Notifier`; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        store: Engine,
        notifier: Notifier,
        metrics: DeliveryMetrics | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.clock, self.notifier, self.metrics = clock, notifier, metrics
        self.backoff = backoff or Backoff()
        self._sessions = session_factory(store)

    def _claim(self) -> Envelope | None:
        now = self.clock.now()
        with self._sessions() as session, session.begin():
            due = due_messages(session=session, now=now, limit=1)
            if not due:
                return None
            due[0].next_attempt_at = now + timedelta(seconds=self.backoff.lease_s)
            session.add(due[0])
            return _envelope(due[0])

    def _send(self, envelope: Envelope) -> SendResult:
        if envelope.target_id is None:
            return SendResult("?", "?", ok=False, error="message names no target", permanent=True)
        return self.notifier.send(envelope.target_id, envelope.title, envelope.body, envelope.kind)

    def _record(self, envelope: Envelope, result: SendResult) -> str:
        now = self.clock.now()
        with self._sessions() as session, session.begin():
            if result.ok:
                mark_sent(session=session, message_id=envelope.id, sent_at=now)
                return "sent"
            limit = envelope.attempts + 1 if result.permanent else self.backoff.max_attempts
            retry_at = now + self.backoff.delay(envelope.attempts + 1)
            message = mark_failed(
                session=session, message_id=envelope.id, next_attempt_at=retry_at,
                error=scrub(result.error or "failed"), max_attempts=limit,
            )  # fmt: skip
            return "dead" if message.status == "dead" else "failed"

    def deliver_one(self) -> str | None:
        """Send the oldest due message; its outcome, or None when nothing is due (blocking)."""
        envelope = self._claim()
        if envelope is None:
            return None
        outcome = self._record(envelope, self._send(envelope))
        if outcome != "sent":
            log.warning("notification %s %s: %s", envelope.id, outcome, "target refused or failed")
        if self.metrics is not None:
            self.metrics.notification(outcome)
        return outcome

    def deliver_due(self, limit: int = 100) -> list[str]:
        """Send every due message (at most `limit`); the outcomes, in order (blocking)."""
        outcomes = []
        for _ in range(limit):
            outcome = self.deliver_one()
            if outcome is None:
                break
            outcomes.append(outcome)
        self.report_pending()
        return outcomes

    def pending(self) -> int:
        with self._sessions() as session:
            return pending_count(session=session)

    def report_pending(self) -> None:
        if self.metrics is not None:
            self.metrics.set_outbox_pending(self.pending())

    async def run(self, stop: asyncio.Event, tick_s: float = 1.0) -> None:
        """Deliver due messages every `tick_s` (of the Clock) until `stop` is set."""
        while not stop.is_set():
            try:
                await to_thread.run_sync(self.deliver_due)
            except Exception:  # the database may be briefly away; keep the worker alive
                log.exception("outbox delivery cycle failed; retrying")
            due = self.clock.now() + timedelta(seconds=tick_s)
            await waiting.until(self.clock, due, stop)
