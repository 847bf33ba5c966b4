"""Delivery through real peers: Apprise email to a loopback SMTP server, JSON to a loopback sink."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from sqlalchemy import Engine

from receiver.alerting.catalogue import spec
from receiver.alerting.engine import AlertEngine
from receiver.alerting.loop import AlertLoop
from receiver.alerting.model import FleetView, Severity, SiteView
from receiver.alerting.notify.notifier import Notifier
from receiver.alerting.notify.outbox import Backoff, DeliveryWorker
from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.storage.engine import create_engine_for
from tests.support.alerting import outbox, service_alert, site_alert
from tests.support.sinks import HttpSink

SMTP_PASSWORD = "smtp-Pa55word-xyz"
HOOK_PASSWORD = "hook-S3cret-qrs"


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 Message accepted"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, with AUTH over plain text."""
    inbox, port = Inbox(), _free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=_authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield inbox, port
    controller.stop()


class Outcomes:
    """The delivery metrics as receiver.metrics.registry.Metrics would count them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.pending = -1

    def notification(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def set_outbox_pending(self, count: int) -> None:
        self.pending = count


def wire(
    clock: Clock, settings: Settings, store: Engine, notifier: Notifier, metrics: Outcomes
) -> tuple[AlertEngine, DeliveryWorker]:
    route = lambda severity: [t.id for t in notifier.targets_for(severity)]  # noqa: E731
    engine = AlertEngine(clock, settings, store, route=route)
    return engine, DeliveryWorker(clock, store, notifier, metrics, Backoff(first_s=10))


def test_email_arrives_with_subject_and_body(
    smtp: tuple[Inbox, int], clock: Clock, settings: Settings, store: Engine
) -> None:
    """A firing alert reaches a real SMTP server as an email titled and worded as the
    alert, with a link to its runbook."""
    inbox, port = smtp
    url = (
        f"mailto://alerts:{SMTP_PASSWORD}@127.0.0.1:{port}"
        "?from=monitor@example.com&to=ops@example.com&format=text"
    )
    notifier, metrics = Notifier([SecretStr(url)]), Outcomes()
    engine, worker = wire(clock, settings, store, notifier, metrics)
    engine.evaluate([site_alert("SiteUnavailable", 7, Severity.CRITICAL)])
    clock.advance(30)
    engine.flush()
    assert worker.deliver_due() == ["sent"]
    [mail] = inbox.messages
    assert mail["Subject"] == "[FIRING:1] SiteUnavailable (critical)"
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "SiteUnavailable: site Site 7 (7)" in text
    assert "Check: things." in text
    assert f"Runbook: {spec('SiteUnavailable').runbook_url}" in text
    assert "ops@example.com" in mail["To"]
    assert metrics.pending == 0


def test_json_target_down_then_up_gets_each_alert_once_across_a_restart(
    clock: Clock, settings: Settings, store: Engine, database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A JSON target failing for a while, across a restart, then gets each alert exactly once."""
    caplog.set_level(logging.DEBUG)
    with HttpSink() as sink:
        sink.fail_with(500)
        url = sink.url("/hook").replace("http://", f"json://alerts:{HOOK_PASSWORD}@")
        metrics = Outcomes()
        engine, worker = wire(clock, settings, store, Notifier([SecretStr(url)]), metrics)
        engine.evaluate([site_alert("SoCLow", 7), service_alert("AuthFailing")])
        clock.advance(30)
        assert engine.flush() == 2
        assert worker.deliver_due() == ["failed", "failed"]
        assert worker.deliver_due() == []  # backing off: nothing due yet
        assert {m.last_error for m in outbox(store)} == {"json target refused the notification"}

        # Restart: new engine, worker, notifier and database engine on the same database.
        store2 = create_engine_for(database_url)
        metrics2 = Outcomes()
        engine2, worker2 = wire(clock, settings, store2, Notifier([SecretStr(url)]), metrics2)
        engine2.evaluate([site_alert("SoCLow", 7), service_alert("AuthFailing")])
        clock.advance(10)
        assert engine2.flush() == 0
        assert worker2.deliver_due() == ["failed", "failed"]
        sink.fail_with(None)
        clock.advance(20)
        assert worker2.deliver_due() == ["sent", "sent"]
        for _ in range(3):
            clock.advance(3600)
            worker2.deliver_due()
        store2.dispose()

        delivered = [r.json()["title"] for r in sink.accepted]
        assert sorted(delivered) == [
            "[FIRING:1] AuthFailing (critical)",
            "[FIRING:1] SoCLow (warning)",
        ]
        assert len(sink.requests) == 6
        assert sink.accepted[0].headers["authorization"].startswith("Basic ")
    assert (metrics.counts["failed"], metrics2.counts["sent"], metrics2.pending) == (2, 2, 0)
    logged = caplog.text + "".join(str(m.last_error) for m in outbox(store))
    assert "127.0.0.1" in caplog.text  # Apprise did log about the target…
    assert HOOK_PASSWORD not in logged  # …but never its secret


def test_message_is_dead_after_max_attempts(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """A target that never recovers leaves the message dead after max_attempts, no more sends."""
    with HttpSink() as sink:
        sink.fail_with(503)
        notifier = Notifier([SecretStr(sink.url("/x").replace("http://", "json://"))])
        engine = AlertEngine(clock, settings, store, route=lambda s: [notifier.targets[0].id])
        worker = DeliveryWorker(clock, store, notifier, None, Backoff(first_s=1, max_attempts=3))
        engine.evaluate([service_alert("ApiDown")])
        clock.advance(30)
        engine.flush()
        outcomes = []
        for _ in range(6):
            outcomes += worker.deliver_due()
            clock.advance(60)
        assert outcomes == ["failed", "failed", "dead"]
        assert len(sink.requests) == 3
        assert worker.pending() == 0


@pytest.mark.anyio
async def test_run_loops_evaluate_flush_and_deliver(
    clock: Clock, settings: Settings, store: Engine
) -> None:
    """The alert loop and the delivery worker, on a sped-up clock, deliver a fleet's alert
    and stop."""
    with HttpSink() as sink:
        notifier = Notifier([SecretStr(sink.url("/hook").replace("http://", "json://"))])
        engine, worker = wire(clock, settings, store, notifier, Outcomes())

        async def fleet() -> FleetView:  # fresh data, so SoCLow is judged through its 10 min hold
            return FleetView(sites=(SiteView(7, "Alpha", soc_ratio=0.02, last_update=clock.now()),))

        stop = asyncio.Event()
        clock.set_speed(600.0)  # SoCLow's hold of 10 min and group_wait of 30 s pass in ~1 s
        tasks = [
            asyncio.create_task(AlertLoop(engine, fleet, min_gap_s=0.0).run(stop)),
            asyncio.create_task(worker.run(stop, tick_s=5)),
        ]
        try:
            [request] = await sink.until(1)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        assert request.json()["title"] == "[FIRING:1] SoCLow (warning)"
