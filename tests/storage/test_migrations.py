"""The shipped migrations build exactly the models' schema, idempotently, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel, col, select

from receiver.storage.binding import datetime_binder
from receiver.storage.deliveries import replay_deliveries
from receiver.storage.engine import (
    alembic_config,
    create_engine_for,
    current_revision,
    session_factory,
    upgrade,
)
from receiver.storage.tables import ScheduleEntryRecord, Site
from tests.support.history import head_revision


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


def test_0003_keeps_every_entry_and_replay_applies_what_the_old_rule_dropped(
    database_url: str,
) -> None:
    """An entry stored by the one-row-per-slot rule becomes generation 0 with every status
    of its history; a replay then applies the reports that rule dropped, once."""
    engine = create_engine_for(database_url)
    bind = datetime_binder(engine.dialect)  # stored as the application stores them
    moment = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    at, start, end = (bind(moment + timedelta(minutes=m)) for m in (0, 60, 75))
    second = timedelta(seconds=1)
    slot = {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T09:15:00Z"}
    try:
        _migrate(engine, "0002")
        ids: list[int] = []
        with engine.begin() as connection:
            # The old rule stored 1 then 5 and dropped the new entry's 1 and 3.
            for n, status in enumerate((1, 5, 1, 3), start=1):
                body = json.dumps({"siteId": 7, "schedule": [{**slot, "status": status}]})
                ids.append(
                    connection.execute(
                        text(
                            "INSERT INTO webhook_deliveries (received_at, digest, site_id, body)"
                            " VALUES (:at, :digest, 7, :body) RETURNING id"
                        ),
                        {
                            "at": bind(moment + n * second),
                            "digest": f"d{n}",
                            "body": body,
                        },
                    ).scalar_one()
                )
            entry_id = connection.execute(
                text(
                    "INSERT INTO schedule_entries (site_id, start_at, end_at, status,"
                    " status_at, updated_source) VALUES (7, :start, :end, 5, :at, 'webhook')"
                    " RETURNING id"
                ),
                {"start": start, "end": end, "at": at},
            ).scalar_one()
            for delivery_id, status in zip(ids, (1, 5), strict=False):
                connection.execute(
                    text(
                        "INSERT INTO schedule_status_changes"
                        " (entry_id, status, observed_at, source, delivery_id)"
                        " VALUES (:entry, :status, :at, 'webhook', :delivery)"
                    ),
                    {"entry": entry_id, "status": status, "at": at, "delivery": delivery_id},
                )
        upgrade(engine)
        with session_factory(engine)() as session:
            entry = session.exec(select(ScheduleEntryRecord)).one()
            assert (entry.generation, entry.statuses_seen) == (0, 0b100010)
            since = datetime(2026, 3, 2, tzinfo=UTC)
            assert replay_deliveries(session=session, since=since) == 2
            assert replay_deliveries(session=session, since=since) == 0
            session.commit()
            rows = session.exec(
                select(ScheduleEntryRecord.generation, ScheduleEntryRecord.status).order_by(
                    col(ScheduleEntryRecord.generation)
                )
            ).all()
        assert [tuple(r) for r in rows] == [(0, 5), (1, 3)]
    finally:
        engine.dispose()


def test_concurrent_upgrades_of_a_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    """Several `db upgrade` processes started at once on a new SQLite file: one migrates,
    the others wait for it and find the schema at head (none fails on 'already exists')."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command = [sys.executable, "-m", "receiver", "db", "upgrade", "--database-url", url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLECT_")}
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = []
    for run in runs:
        _, err = run.communicate(timeout=120)
        results.append((run.returncode, err.decode()))
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    engine = create_engine_for(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
