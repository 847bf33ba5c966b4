"""Alerting fixtures: a migrated database per backend, a frozen clock, default settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from receiver.cellect.clock import Clock
from receiver.settings import Settings
from receiver.storage.engine import create_engine_for, upgrade
from tests.support.alerting import T0


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
