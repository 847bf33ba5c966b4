"""Helpers of the alerting tests: alert makers and a look into the outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from receiver.alerting.catalogue import spec
from receiver.alerting.model import Alert, Severity
from receiver.storage.alert_tables import OutboxMessage
from receiver.storage.engine import session_factory

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def site_alert(rule: str, site_id: int, severity: Severity = Severity.WARNING) -> Alert:
    return Alert(
        rule=rule,
        severity=severity,
        labels={"site_id": str(site_id), "site_name": f"Site {site_id}"},
        summary=f"{rule}: site Site {site_id} ({site_id})",
        description=f"{rule} on site {site_id}. Check: things.",
        since=T0,
        runbook_url=spec(rule).runbook_url,
    )


def service_alert(rule: str, severity: Severity = Severity.CRITICAL) -> Alert:
    return Alert(rule, severity, {}, f"{rule}: the API", f"{rule}. Check: network.", T0)


def outbox(store: Engine) -> list[OutboxMessage]:
    with session_factory(store)() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def new_session(store: Engine) -> Session:
    return session_factory(store)()
