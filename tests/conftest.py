"""Shared fixtures: the anyio backend, and databases (SQLite files and PostgreSQL).

PostgreSQL tests use the server named by CELLECT_TEST_POSTGRES_URL (default: the local
server on 127.0.0.1:5432, database `test`); each test gets a database of its own,
dropped afterwards. Without a reachable server those tests are skipped, unless
CELLECT_TEST_REQUIRE_PEERS is set (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from receiver.storage.engine import create_engine_for, upgrade
from tests.support.databases import fresh_postgres_database

POSTGRES_URL = os.environ.get(
    "CELLECT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PEERS = bool(os.environ.get("CELLECT_TEST_REQUIRE_PEERS"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _postgres_admin_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_admin_reachable()
    if problem is not None:
        if REQUIRE_PEERS:
            pytest.fail(f"PostgreSQL is required but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path}/cellect-monitor.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """An engine on a fresh PostgreSQL database, migrated to head (PostgreSQL-only tests)."""
    engine = create_engine_for(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database of each backend (`database_url`), migrated to head."""
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
