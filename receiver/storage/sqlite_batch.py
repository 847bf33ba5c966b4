"""The webhook batch's statements on SQLite, sent straight through the sqlite3 connection.

Same statements and stored bytes as the SQLAlchemy Core writer (status_batch.CoreWriter,
webhooks._insert_new), but run on the DBAPI connection of the session's own transaction:
SQLAlchemy's statement building and per-row result processing were most of the
writer's CPU, and while the writer thread holds the GIL the event loop stands still.
Datetimes are bound in SQLAlchemy's SQLite storage format (status_batch.datetime_binder),
so rows written here and by the Core writer are identical; tests pin that.

Nothing here commits: the session's commit (synchronous=FULL) ends the one transaction
of the batch. The inserts run one row per statement (sqlite3's `executemany` returns no
RETURNING rows); that is a few microseconds a row from sqlite3's statement cache. Updates
and history rows go out with `executemany`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.schedules import Source
from receiver.storage.status_batch import Current, Key, Observation, session_binder

_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (received_at, digest, site_id, body, remote_addr)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING RETURNING id"
)
_INSERT_ENTRY = (
    "INSERT INTO schedule_entries"
    " (site_id, start_at, end_at, power_kw, status, status_at, updated_source)"
    " VALUES (?, ?, ?, NULL, ?, ?, ?)"
    " ON CONFLICT (site_id, start_at, end_at) DO NOTHING RETURNING id"
)
_SELECT_ENTRY = (
    "SELECT id, status FROM schedule_entries WHERE site_id = ? AND start_at = ? AND end_at = ?"
)
_UPDATE_ENTRY = (
    "UPDATE schedule_entries SET status = ?, status_at = ?, updated_source = ? WHERE id = ?"
)
_INSERT_HISTORY = (
    "INSERT INTO schedule_status_changes (entry_id, status, observed_at, source, delivery_id)"
    " VALUES (?, ?, ?, ?, ?)"
)

# One delivery to store: (received_at, digest, site_id, body, remote_addr), datetimes as given.
DeliveryRow = tuple[Any, str, int, str, str | None]


def is_sqlite(session: Session) -> bool:
    """Whether the session's database is SQLite (the one this writer serves)."""
    return session.get_bind().dialect.name == "sqlite"


def driver_connection(session: Session) -> sqlite3.Connection:
    """The sqlite3 connection under the session's transaction (begun if it was not)."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    return connection


class SqliteWriter:
    """Writes one batch through the session's sqlite3 connection (a `StatusWriter`)."""

    def __init__(self, session: Session) -> None:
        self._db = driver_connection(session)
        self._bind = session_binder(session)

    def insert_deliveries(self, rows: Sequence[DeliveryRow]) -> dict[str, int]:
        """Insert the deliveries not stored yet; ids by digest of those inserted."""
        bind, execute = self._bind, self._db.cursor().execute
        ids: dict[str, int] = {}
        for received_at, digest, site_id, body, remote_addr in rows:
            found = execute(
                _INSERT_DELIVERY, (bind(received_at), digest, site_id, body, remote_addr)
            ).fetchone()
            if found is not None:
                ids[digest] = found[0]
        return ids

    def insert_missing(
        self, firsts: Mapping[Key, Observation], source: Source
    ) -> dict[Key, Current]:
        """Create the entries not stored yet; (id, status) of each one created, by key."""
        bind, execute = self._bind, self._db.cursor().execute
        created: dict[Key, Current] = {}
        for key, seen in firsts.items():
            row = (
                seen.site_id,
                bind(seen.start),
                bind(seen.end),
                int(seen.status),
                bind(seen.observed_at),
                source,
            )
            found = execute(_INSERT_ENTRY, row).fetchone()
            if found is not None:
                created[key] = (found[0], seen.status)
        return created

    def lock_existing(self, keys: Sequence[Key]) -> dict[Key, Current]:
        """(id, status) of the stored entries `keys`.

        SQLite has no row locks: the batch's first insert took the database's write lock.
        """
        bind, execute = self._bind, self._db.cursor().execute
        found: dict[Key, Current] = {}
        for key in keys:
            site_id, start, end = key
            row = execute(_SELECT_ENTRY, (site_id, bind(start), bind(end))).fetchone()
            if row is not None:
                found[key] = (row[0], ImplementationStatus(row[1]))
        return found

    def write(
        self,
        moved: Mapping[int, Observation],
        history: Sequence[tuple[int, Observation]],
        source: Source,
    ) -> None:
        """Move each entry of `moved` to its status, and append the history rows."""
        bind = self._bind
        if moved:
            updates = [
                (int(seen.status), bind(seen.observed_at), source, entry_id)
                for entry_id, seen in sorted(moved.items())
            ]
            self._db.executemany(_UPDATE_ENTRY, updates)
        if history:
            rows = [
                (entry_id, int(seen.status), bind(seen.observed_at), source, seen.delivery_id)
                for entry_id, seen in history
            ]
            self._db.executemany(_INSERT_HISTORY, rows)
