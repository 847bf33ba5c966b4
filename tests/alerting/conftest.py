"""Alerting fixtures: a migrated database per backend, a frozen clock, settings, alert makers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from receiver.alerting.model import Alert, Severity
from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.storage.alert_tables import OutboxMessage
from receiver.storage.engine import create_engine_for, session_factory, upgrade

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database (SQLite and PostgreSQL) migrated to head."""
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(T0)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def site_alert(rule: str, site_id: int, severity: Severity = Severity.WARNING) -> Alert:
    return Alert(
        rule=rule,
        severity=severity,
        labels={"site_id": str(site_id), "site_name": f"Site {site_id}"},
        summary=f"{rule}: site Site {site_id} ({site_id})",
        description=f"{rule} on site {site_id}. Check: things.",
        since=T0,
    )


def service_alert(rule: str, severity: Severity = Severity.CRITICAL) -> Alert:
    return Alert(rule, severity, {}, f"{rule}: the API", f"{rule}. Check: network.", T0)


def outbox(store: Engine) -> list[OutboxMessage]:
    with session_factory(store)() as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())  # type: ignore[arg-type]


def new_session(store: Engine) -> Session:
    return session_factory(store)()
