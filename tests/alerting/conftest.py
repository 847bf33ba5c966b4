"""Alerting fixtures: a migrated database per backend, a frozen clock, default settings."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from receiver.cellect.clock import Clock
from receiver.settings import Settings
from tests.support.alerting import T0


@pytest.fixture
def store(engine: Engine) -> Engine:
    """The migrated engine of each backend (tests/conftest.py), as the engine's store."""
    return engine


@pytest.fixture
def clock() -> Clock:
    return Clock.frozen(T0)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]
