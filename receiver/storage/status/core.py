"""The status path's statements through SQLAlchemy Core: any database (a `StatusWriter`).

Writes bind through untyped views of the tables with values already in the driver's
form (`binding`); executemany sends many rows from one cached compilation ("insert
many values" with RETURNING where ids are needed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, tuple_, update
from sqlmodel import Session

from receiver.storage.binding import session_binder, untyped
from receiver.storage.dialect import chunks, insert_for
from receiver.storage.status.model import (
    UPDATE_COLUMNS,
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
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange, WebhookDelivery

ENTRIES = ScheduleEntryRecord.__table__  # type: ignore[attr-defined]
HISTORY = ScheduleStatusChange.__table__  # type: ignore[attr-defined]
DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
ENTRIES_RAW = untyped(ENTRIES)
HISTORY_RAW = untyped(HISTORY)
DELIVERIES_RAW = untyped(DELIVERIES)
SLOT_GENERATION = ["site_id", "start_at", "end_at", "generation"]


def take_write_lock(session: Session) -> None:
    """On SQLite, take the database's write lock now (BEGIN IMMEDIATE) unless the
    transaction already writes: what is read next cannot change before the commit."""
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    if not connection.in_transaction:
        connection.execute("BEGIN IMMEDIATE")


def stored_generation(
    entry_id: int, number: int, status: int, seen: int, unconfirmed: int, power: float | None
) -> Generation:
    """A generation as stored (rows from before generations existed have every status
    they moved through in `statuses_seen`, set by migration 0003)."""
    return Generation(number, seen or (1 << status), unconfirmed, entry_id, power)


_SLOT_COLUMNS = [
    ENTRIES.c[name]
    for name in (
        "id", "site_id", "start_at", "end_at", "generation", "status", "statuses_seen",
        "statuses_unconfirmed", "power_kw",
    )
]  # fmt: skip


class CoreWriter:
    """One application's statements on the session's connection and transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._bind = session_binder(session)

    def lock(self) -> None:
        take_write_lock(self._session)

    def load(self, keys: Sequence[Key]) -> dict[Key, list[Generation]]:
        found: dict[Key, list[Generation]] = {}
        c = ENTRIES.c
        span = tuple_(c.site_id, c.start_at, c.end_at)
        for chunk in chunks(keys):
            query = (
                ENTRIES.select()
                .with_only_columns(*_SLOT_COLUMNS)
                .where(span.in_(list(chunk)))
                .order_by(c.site_id, c.start_at, c.end_at, c.generation)
                .with_for_update()
            )
            for row in self._session.execute(query).all():
                entry_id, site_id, start, end, number, status, seen, unconfirmed, power = row
                found.setdefault((site_id, start, end), []).append(
                    stored_generation(entry_id, number, status, seen, unconfirmed, power)
                )
        return found

    def recorded(self, keys: Sequence[Key]) -> set[tuple[Key, int, int]]:
        found: set[tuple[Key, int, int]] = set()
        e, h = ENTRIES.c, HISTORY.c
        span = tuple_(e.site_id, e.start_at, e.end_at)
        for chunk in chunks(keys):
            query = (
                HISTORY.join(ENTRIES, e.id == h.entry_id)
                .select()
                .with_only_columns(e.site_id, e.start_at, e.end_at, h.status, h.delivery_id)
                .where(span.in_(list(chunk)), h.delivery_id.is_not(None))
            )
            for site_id, start, end, status, delivery_id in self._session.execute(query).all():
                found.add(((site_id, start, end), status, delivery_id))
        return found

    def insert(self, writes: Sequence[GenerationWrite], source: Source) -> None:
        bind = self._bind
        pending: dict[tuple[int, Any, Any, int], Generation] = {}
        rows = []
        for write in writes:
            row = entry_values(write, bind)
            pending[(row["site_id"], row["start_at"], row["end_at"], row["generation"])] = (
                write.generation
            )
            rows.append(dict(row))
        raw = ENTRIES_RAW.c
        stmt = (
            insert_for(self._session, ENTRIES_RAW)
            .on_conflict_do_nothing(index_elements=SLOT_GENERATION)
            .returning(raw.id, raw.site_id, raw.start_at, raw.end_at, raw.generation)
        )
        inserted = 0
        # Rows come back in the bound spelling (SQLite: text) or an equal value
        # (PostgreSQL: an aware datetime, equal and hash-equal to the bound one).
        for entry_id, site_id, start, end, number in self._execute(stmt, rows).all():
            pending[(site_id, start, end, number)].entry_id = entry_id
            inserted += 1
        require_all_inserted(len(rows), inserted)

    def update(self, writes: Sequence[GenerationWrite]) -> None:
        rows = update_rows(writes, self._bind)
        self._execute(_UPDATE, [dict(zip(UPDATE_COLUMNS, row, strict=True)) for row in rows])

    def append_history(self, rows: Sequence[HistoryRow], source: Source) -> None:
        bind = self._bind
        values = [
            {
                "entry_id": row.generation.entry_id,
                "status": int(row.status),
                "observed_at": bind(row.observed_at),
                "source": source,
                "delivery_id": row.delivery_id,
            }
            for row in rows
        ]
        self._execute(insert_for(self._session, HISTORY_RAW), values)

    def insert_deliveries(self, rows: Sequence[DeliveryRow]) -> dict[str, int]:
        bind = self._bind
        values = [
            {
                "received_at": bind(received_at),
                "digest": digest,
                "site_id": site_id,
                "body": body,
                "remote_addr": remote_addr,
            }
            for received_at, digest, site_id, body, remote_addr in rows
        ]
        if not values:
            return {}
        stmt = (
            insert_for(self._session, DELIVERIES_RAW)
            .on_conflict_do_nothing(index_elements=["digest"])
            .returning(DELIVERIES_RAW.c.digest, DELIVERIES_RAW.c.id)
        )
        return {digest: row_id for digest, row_id in self._execute(stmt, values).all()}

    def _execute(self, statement: Any, params: list[dict[str, Any]]) -> Any:
        return self._session.connection().execute(statement, params)


_UPDATE = (
    update(ENTRIES_RAW)
    .where(ENTRIES_RAW.c.id == bindparam("entry_id"))
    .values(
        status=bindparam("new_status"),
        status_at=func.coalesce(bindparam("new_status_at"), ENTRIES_RAW.c.status_at),
        updated_source=func.coalesce(bindparam("new_source"), ENTRIES_RAW.c.updated_source),
        statuses_seen=bindparam("new_seen"),
        statuses_unconfirmed=bindparam("new_unconfirmed"),
        power_kw=bindparam("new_power"),
    )
)
