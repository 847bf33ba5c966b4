"""Engines, sessions and schema upgrades for the history store.

`create_engine_for(url)` builds the one engine of a process: SQLite in WAL mode with
durable commits, or PostgreSQL through psycopg 3. `upgrade(engine_or_url)` runs the
Alembic migrations shipped in `receiver/storage/migrations/` to head, with the Alembic
configuration built in code (no alembic.ini needs to be found at run time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from receiver.settings import normalise_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# A writer waits this long for SQLite's write lock before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Serialises concurrent `upgrade` calls (two workers starting at once) on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x63656C6C  # "cell"


class DatabaseUrlError(ValueError):
    """The database URL is not one this service can use."""


def create_engine_for(url: str) -> Engine:
    """The engine for `url` (sqlite:///… or postgresql://…), configured for this service."""
    try:
        parsed = make_url(normalise_database_url(url))
    except (ValueError, ArgumentError) as exc:
        raise DatabaseUrlError(f"invalid database URL: {_first_line(exc)}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.render_as_string(hide_password=False))
    return create_engine(parsed, pool_pre_ping=True)


def _first_line(exc: BaseException) -> str:
    # Never echo the URL itself: it may carry a password.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _sqlite_engine(url: str) -> Engine:
    # Threads share the pool (the async app hands sessions to worker threads).
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine`; objects stay readable after commit (no lazy reloads)."""
    return sessionmaker(engine, class_=Session, expire_on_commit=False)


def alembic_config() -> Config:
    """The Alembic configuration, built in code around the shipped migrations folder."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine_or_url: Engine | str) -> str | None:
    """Migrate the database to the newest schema; returns the revision it ends at."""
    engine = create_engine_for(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # A migration that rebuilds a table (SQLite's only way to change a
                # constraint) drops the old one: with foreign keys on, that would
                # cascade-delete the rows referencing it. The pragma only takes
                # effect outside a transaction.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    _migrate(connection)
                    if sqlite:
                        _check_foreign_keys(connection)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
        return current_revision(engine)
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


def _migrate(connection: Connection) -> None:
    # One migration at a time: two processes starting on a fresh database (the monitor
    # and `cellect-monitor webhooks url`, say, or two replicas) would both create the
    # tables, and one would fail. The second waits, then finds the schema at head.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # sqlite3 would begin the transaction only at the first INSERT, after the DDL;
        # an IMMEDIATE one takes the write lock now (waiting out the busy timeout).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left {len(broken)} dangling foreign keys")


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first upgrade)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
