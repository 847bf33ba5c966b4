"""Migration 0004 adds `replicas` and `leases` and takes them away again, on both databases."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from receiver.storage.engine import alembic_config, create_engine_for, current_revision, upgrade


def _migrate(engine: Engine, to: str, *, down: bool = False) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, to)


def _columns(engine: Engine, table: str) -> dict[str, bool]:
    return {c["name"]: c["nullable"] for c in inspect(engine).get_columns(table)}


def test_0004_upgrade_and_downgrade(database_url: str) -> None:
    """From 0003, 0004 creates both tables with their keys and the epoch's default of 0;
    downgrading to 0003 drops them and leaves the rest; upgrading again works."""
    engine = create_engine_for(database_url)
    try:
        _migrate(engine, "0003")
        assert not {"replicas", "leases"} & set(inspect(engine).get_table_names())
        _migrate(engine, "0004")
        assert current_revision(engine) == "0004"
        assert _columns(engine, "replicas") == {
            "id": False,
            "host": False,
            "pid": False,
            "version": False,
            "schema_revision": True,
            "started_at": False,
            "heartbeat_at": False,
        }
        assert _columns(engine, "leases") == {
            "kind": False,
            "bucket": False,
            "owner": True,
            "epoch": False,
            "expires_at": True,
            "acquired_at": True,
        }
        assert inspect(engine).get_pk_constraint("leases")["constrained_columns"] == [
            "kind",
            "bucket",
        ]
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO leases (kind, bucket) VALUES ('poll', 7)"))
            epoch = connection.execute(text("SELECT epoch FROM leases")).scalar_one()
        assert epoch == 0
        _migrate(engine, "0003", down=True)
        tables = set(inspect(engine).get_table_names())
        assert not {"replicas", "leases"} & tables
        assert {"sites", "schedule_entries", "alembic_version"} <= tables
        assert current_revision(engine) == "0003"
        _migrate(engine, "0004")
        assert current_revision(engine) == "0004"
        upgrade(engine)  # and on to the head
    finally:
        engine.dispose()
