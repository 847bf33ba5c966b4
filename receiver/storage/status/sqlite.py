"""The status path's statements on SQLite, sent straight through the sqlite3 connection.

The same statements and stored bytes as `core.CoreWriter`, but run on the DBAPI
connection of the session's own transaction, without SQLAlchemy's statement building
and per-row result processing (the webhook writer's hot path). Datetimes are bound in
SQLAlchemy's SQLite storage format (`binding.datetime_binder`), so rows written here and
by the Core writer are identical; tests pin that.

Nothing here commits: the session's commit (synchronous=FULL) ends the one transaction.
Inserts that need their ids run one row per statement (sqlite3's `executemany` returns
no RETURNING rows), a few microseconds a row from sqlite3's statement cache; updates
and history rows go out with `executemany`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from sqlmodel import Session

from receiver.storage.status.core import CoreWriter, stored_generation
from receiver.storage.status.model import (
    DeliveryRow,
    GenerationWrite,
    HistoryRow,
    Key,
    Source,
    entry_values,
    require_all_inserted,
    update_rows,
)
from receiver.storage.status.rule import Generation

_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (received_at, digest, site_id, body, remote_addr)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING RETURNING id"
)
_INSERT_ENTRY = (
    "INSERT INTO schedule_entries (site_id, start_at, end_at, generation, power_kw, status,"
    " status_at, updated_source, statuses_seen, statuses_unconfirmed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (site_id, start_at, end_at, generation) DO NOTHING RETURNING id"
)
_SELECT_SLOT = (
    "SELECT id, generation, status, statuses_seen, statuses_unconfirmed, power_kw"
    " FROM schedule_entries WHERE site_id = ? AND start_at = ? AND end_at = ?"
    " ORDER BY generation"
)
_UPDATE_ENTRY = (
    "UPDATE schedule_entries SET status = ?, status_at = COALESCE(?, status_at),"
    " updated_source = COALESCE(?, updated_source), statuses_seen = ?,"
    " statuses_unconfirmed = ?, power_kw = ? WHERE id = ?"
)
_INSERT_HISTORY = (
    "INSERT INTO schedule_status_changes (entry_id, status, observed_at, source, delivery_id)"
    " VALUES (?, ?, ?, ?, ?)"
)


def is_sqlite(session: Session) -> bool:
    """Whether the session's database is SQLite (the one this writer serves)."""
    return session.get_bind().dialect.name == "sqlite"


def driver_connection(session: Session) -> sqlite3.Connection:
    """The sqlite3 connection under the session's transaction (begun if it was not)."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    return connection


class SqliteWriter(CoreWriter):
    """The hot statements through the session's sqlite3 connection (replay's lookup of
    what was recorded stays in Core: it is not on the hot path)."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._db = driver_connection(session)

    def insert_deliveries(self, rows: Sequence[DeliveryRow]) -> dict[str, int]:
        bind, execute = self._bind, self._db.cursor().execute
        ids: dict[str, int] = {}
        for received_at, digest, site_id, body, remote_addr in rows:
            found = execute(
                _INSERT_DELIVERY, (bind(received_at), digest, site_id, body, remote_addr)
            ).fetchone()
            if found is not None:
                ids[digest] = found[0]
        return ids

    def load(self, keys: Sequence[Key]) -> dict[Key, list[Generation]]:
        bind, execute = self._bind, self._db.cursor().execute
        found: dict[Key, list[Generation]] = {}
        for key in keys:
            site_id, start, end = key
            rows = execute(_SELECT_SLOT, (site_id, bind(start), bind(end))).fetchall()
            if rows:
                found[key] = [
                    stored_generation(entry_id, number, status, seen, unconfirmed, power)
                    for entry_id, number, status, seen, unconfirmed, power in rows
                ]
        return found

    def insert(self, writes: Sequence[GenerationWrite], source: Source) -> None:
        bind, execute = self._bind, self._db.cursor().execute
        inserted = 0
        for write in writes:
            v = entry_values(write, bind)
            found = execute(
                _INSERT_ENTRY,
                (
                    v["site_id"], v["start_at"], v["end_at"], v["generation"], v["power_kw"],
                    v["status"], v["status_at"], v["updated_source"], v["statuses_seen"],
                    v["statuses_unconfirmed"],
                ),
            ).fetchone()  # fmt: skip
            if found is not None:
                write.generation.entry_id = found[0]
                inserted += 1
        require_all_inserted(len(writes), inserted)

    def update(self, writes: Sequence[GenerationWrite]) -> None:
        self._db.executemany(_UPDATE_ENTRY, update_rows(writes, self._bind))

    def append_history(self, rows: Sequence[HistoryRow], source: Source) -> None:
        bind = self._bind
        values = [
            (r.generation.entry_id, int(r.status), bind(r.observed_at), source, r.delivery_id)
            for r in rows
        ]
        self._db.executemany(_INSERT_HISTORY, values)


def writer_for(session: Session) -> CoreWriter:
    """The fastest writer for the session's database."""
    return SqliteWriter(session) if is_sqlite(session) else CoreWriter(session)
