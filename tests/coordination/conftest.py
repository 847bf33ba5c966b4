"""Coordination fixtures: an engine on a fresh, migrated database of each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from receiver.storage.engine import create_engine_for, upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database (SQLite, then PostgreSQL) migrated to head."""
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
