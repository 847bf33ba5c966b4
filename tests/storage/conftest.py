"""Storage fixtures: a migrated engine and a session on each database of `database_url`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from receiver.cellect.models import SiteInformation
from receiver.storage.engine import create_engine_for, session_factory, upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head."""
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def site_info(
    site_id: int, *, soc: float = 50.0, power: float = 0.0, name: str = ""
) -> SiteInformation:
    return SiteInformation(
        site_id=site_id,
        site_name=name or f"Site {site_id}",
        country="ES",
        latitude=40.4,
        longitude=-3.7,
        ess_soc=soc,
        ess_power=power,
        ess_installed_energy_capacity=200.0,
        ess_power_ac_rated_discharge=100.0,
        ess_power_ac_rated_charge=90.0,
    )


@pytest.fixture
def make_site() -> Callable[..., SiteInformation]:
    """Builds a vendor SiteInformation with plausible defaults."""
    return site_info
