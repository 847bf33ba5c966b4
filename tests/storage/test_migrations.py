"""The shipped migrations build exactly the models' schema, idempotently, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel, select

from receiver.storage.engine import (
    alembic_config,
    create_engine_for,
    current_revision,
    head_revision,
    upgrade,
)
from receiver.storage.tables import Site


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_upgrade_builds_the_models_schema(engine: Engine) -> None:
    """After `upgrade`, Alembic's autogenerate finds no difference from the models."""
    assert _differences(engine) == []
    assert current_revision(engine) == head_revision()


def test_upgrade_is_idempotent(database_url: str) -> None:
    """Upgrading twice (from a URL) leaves the database at head with nothing to change."""
    assert upgrade(database_url) == head_revision()
    assert upgrade(database_url) == head_revision()
    engine = create_engine_for(database_url)
    try:
        assert _differences(engine) == []
    finally:
        engine.dispose()


def _site(seen: datetime) -> Site:
    return Site(
        site_id=7,
        name="Seven",
        country="ES",
        latitude=40.0,
        longitude=-3.0,
        capacity_kwh=100.0,
        rated_charge_kw=50.0,
        rated_discharge_kw=50.0,
        first_seen_at=seen,
        last_seen_at=seen,
    )


def test_aware_datetimes_round_trip(session: Session) -> None:
    """A datetime in any zone comes back as the same instant, aware and in UTC."""
    seen = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    session.add(_site(seen))
    session.commit()
    session.expunge_all()
    stored = session.exec(select(Site)).one()
    assert stored.first_seen_at == seen
    assert stored.first_seen_at.tzinfo == UTC
    assert stored.first_seen_at.hour == 10


def test_naive_datetimes_are_refused(session: Session) -> None:
    """A naive datetime is an error, not silently taken as UTC."""
    session.add(_site(datetime(2024, 3, 1, 12, 0)))
    with pytest.raises(StatementError, match="aware datetime"):
        session.commit()


def test_sqlite_runs_in_wal_mode_with_durable_commits(sqlite_url: str) -> None:
    """SQLite connections use WAL, synchronous=FULL, foreign keys and a busy timeout."""
    engine = create_engine_for(sqlite_url)
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 30_000,
    }


def _indexes(engine: Engine, table: str) -> set[str]:
    return {ix["name"] for ix in inspect(engine).get_indexes(table) if ix["name"]}


def _migrate(engine: Engine, to: str, *, down: bool = False) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, to)


def test_0002_drops_the_ingest_indexes_keeping_the_rows(database_url: str) -> None:
    """From 0001 with a delivery stored, 0002 drops the two indexes and keeps the row;
    downgrading brings them back."""
    engine = create_engine_for(database_url)
    try:
        _migrate(engine, "0001")
        assert "ix_webhook_deliveries_site_received" in _indexes(engine, "webhook_deliveries")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO webhook_deliveries (received_at, digest, site_id, body)"
                    " VALUES (:at, 'd1', 7, '{}')"
                ),
                {"at": datetime(2026, 3, 2, 8, 0)},
            )
        _migrate(engine, "head")
        assert "ix_webhook_deliveries_site_received" not in _indexes(engine, "webhook_deliveries")
        assert "ix_schedule_entries_site_end" not in _indexes(engine, "schedule_entries")
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar()
        assert count == 1
        _migrate(engine, "0001", down=True)
        assert "ix_schedule_entries_site_end" in _indexes(engine, "schedule_entries")
    finally:
        engine.dispose()
