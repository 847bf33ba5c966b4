"""Storage fixtures: a migrated engine and a session on each database of `database_url`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from receiver.cellect.models import SiteInformation
from receiver.storage.engine import session_factory
from tests.support.records import site_info


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def make_site() -> Callable[..., SiteInformation]:
    """Builds a vendor SiteInformation with plausible defaults."""
    return site_info
