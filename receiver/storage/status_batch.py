"""Apply many observed entry statuses at once: the webhook writer's hot path.

Same rule as `schedules.apply_entry` (a status only moves forward by rank; every
change appends a history row), but a handful of statements per batch instead of two or
three per entry: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` creates the
entries not known yet, one `SELECT … FOR UPDATE` reads (and on PostgreSQL locks) the
others, the forward-only walk runs in Python, and the updates and history rows go out
as executemany batches. Keys are handled in (site, start, end) order, so concurrent
writers take row locks in one order and cannot deadlock. Nothing here commits.

The statements go through a `StatusWriter`: `CoreWriter` here (SQLAlchemy Core, any
database) or sqlite_batch.SqliteWriter (the same statements on the sqlite3 connection).
The Core writes bind through untyped views of the tables, with datetimes already in the
form the driver gets for a `UtcDateTime` column (`datetime_binder`): SQLAlchemy's
per-value type processing was most of the writer's CPU. The values stored are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, column, table, tuple_, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import TableClause
from sqlmodel import Session

from receiver.cellect.enums import ImplementationStatus
from receiver.storage.dialect import chunks, insert_for
from receiver.storage.schedules import Source, StatusChange
from receiver.storage.tables import ScheduleEntryRecord, ScheduleStatusChange
from receiver.storage.types import UtcDateTime

Key = tuple[int, datetime, datetime]
# An entry's id and its status as stored.
Current = tuple[int, ImplementationStatus]
DatetimeBinder = Callable[[datetime], Any]
_ENTRIES = ScheduleEntryRecord.__table__  # type: ignore[attr-defined]
_HISTORY = ScheduleStatusChange.__table__  # type: ignore[attr-defined]


def untyped(source: Table) -> TableClause:
    """`source` with untyped columns: values bind as given, already in the driver's form."""
    return table(source.name, *(column(c.name) for c in source.c))


_ENTRIES_RAW = untyped(_ENTRIES)
_HISTORY_RAW = untyped(_HISTORY)


def _aware_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {value!r}")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _sqlite_value(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format of the naive UTC value that UtcDateTime
    # hands it: "YYYY-MM-DD HH:MM:SS.ffffff" (isoformat pads the year to 4 digits too).
    return _aware_utc(value).isoformat(" ", "microseconds")[:26]


def datetime_binder(dialect: Dialect) -> DatetimeBinder:
    """What a `UtcDateTime` column sends the driver for an aware datetime, in one step.

    Same values as SQLAlchemy's processing (UtcDateTime, then the dialect's DateTime),
    and naive datetimes are refused the same way; tests pin the equality on both
    databases. Other dialects get SQLAlchemy's own processor.
    """
    if dialect.name == "sqlite":
        return _sqlite_value
    if dialect.name == "postgresql":
        return _aware_utc
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    return processor


def session_binder(session: Session) -> DatetimeBinder:
    """`datetime_binder` for the session's database, remembering what it converted.

    For one batch: a delivery's moment of receipt recurs in every row it causes, and
    a dict lookup costs a small fraction of the conversion.
    """
    convert = datetime_binder(session.get_bind().dialect)
    seen: dict[datetime, Any] = {}

    def bind(value: datetime) -> Any:
        try:
            return seen[value]
        except KeyError:
            seen[value] = result = convert(value)
            return result

    return bind


@dataclass(frozen=True, slots=True)
class Observation:
    """One entry's status as a delivery (or a poll) reported it."""

    site_id: int
    start: datetime
    end: datetime
    status: ImplementationStatus
    observed_at: datetime
    delivery_id: int | None = None

    @property
    def key(self) -> Key:
        return (self.site_id, self.start, self.end)


class StatusWriter(Protocol):
    """The statements of one batch: the Core writer below, or sqlite_batch.SqliteWriter."""

    def insert_missing(
        self, firsts: Mapping[Key, Observation], source: Source
    ) -> dict[Key, Current]: ...

    def lock_existing(self, keys: Sequence[Key]) -> dict[Key, Current]: ...

    def write(
        self,
        moved: Mapping[int, Observation],
        history: Sequence[tuple[int, Observation]],
        source: Source,
    ) -> None: ...


def apply_observations(
    *,
    session: Session,
    observations: Sequence[Observation],
    source: Source,
    writer: StatusWriter | None = None,
) -> list[tuple[int, StatusChange]]:
    """Apply `observations` (in their order per entry); each change with its observation's index.

    The statements go through `writer` (default: SQLAlchemy Core, any database).
    """
    writer = writer or CoreWriter(session)
    by_key: dict[Key, list[int]] = {}
    for index in sorted(range(len(observations)), key=lambda i: observations[i].key):
        by_key.setdefault(observations[index].key, []).append(index)
    firsts = {key: observations[indexes[0]] for key, indexes in by_key.items()}
    created = writer.insert_missing(firsts, source)
    current = writer.lock_existing([key for key in by_key if key not in created])
    changes: list[tuple[int, StatusChange]] = []
    history: list[tuple[int, Observation]] = []
    moved: dict[int, Observation] = {}
    for key, indexes in by_key.items():
        entry_id, status = created[key] if key in created else current[key]
        for position, index in enumerate(indexes):
            seen = observations[index]
            is_new = key in created and position == 0
            if not is_new and seen.status.rank <= status.rank:
                continue
            previous = None if is_new else status
            changes.append((index, _change(seen, previous, source)))
            history.append((entry_id, seen))
            if not is_new:
                moved[entry_id] = seen
            status = seen.status
    writer.write(moved, history, source)
    return changes


def _change(
    seen: Observation, previous: ImplementationStatus | None, source: Source
) -> StatusChange:
    return StatusChange(
        seen.site_id, seen.start, seen.end, previous, seen.status, source, seen.observed_at
    )


class CoreWriter:
    """The batch's statements through SQLAlchemy Core: any database (a `StatusWriter`)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._bind = session_binder(session)

    def insert_missing(
        self, firsts: Mapping[Key, Observation], source: Source
    ) -> dict[Key, Current]:
        """Create the entries not stored yet; (id, status) of each one created, by key."""
        bind = self._bind
        rows: list[dict[str, Any]] = []
        # Rows come back in the bound spelling (SQLite: text) or an equal value (PostgreSQL:
        # an aware datetime, equal and hash-equal to the bound one), so map them by that.
        key_of: dict[tuple[int, Any, Any], Key] = {}
        for key, seen in firsts.items():
            start, end = bind(seen.start), bind(seen.end)
            key_of[(seen.site_id, start, end)] = key
            rows.append(_entry_row(seen, start, end, source, bind))
        created: dict[Key, Current] = {}
        if not rows:
            return created
        # executemany: SQLAlchemy's "insertmanyvalues" batches the rows into multi-row
        # statements with RETURNING, from one cached compilation (a literal multi-row
        # VALUES would be compiled afresh every batch).
        raw = _ENTRIES_RAW.c
        stmt = (
            insert_for(self._session, _ENTRIES_RAW)
            .on_conflict_do_nothing(index_elements=["site_id", "start_at", "end_at"])
            .returning(raw.id, raw.site_id, raw.start_at, raw.end_at)
        )
        for entry_id, site_id, start, end in self._execute(stmt, rows).all():
            key = key_of[(site_id, start, end)]
            created[key] = (entry_id, firsts[key].status)
        return created

    def lock_existing(self, keys: Sequence[Key]) -> dict[Key, Current]:
        """(id, current status) of the stored entries `keys`, locked until the commit."""
        found: dict[Key, Current] = {}
        span = tuple_(_ENTRIES.c.site_id, _ENTRIES.c.start_at, _ENTRIES.c.end_at)
        for chunk in chunks(keys):
            query = (
                _ENTRIES.select()
                .with_only_columns(
                    _ENTRIES.c.id,
                    _ENTRIES.c.site_id,
                    _ENTRIES.c.start_at,
                    _ENTRIES.c.end_at,
                    _ENTRIES.c.status,
                )
                .where(span.in_(list(chunk)))
                .order_by(_ENTRIES.c.site_id, _ENTRIES.c.start_at, _ENTRIES.c.end_at)
                .with_for_update()
            )
            for entry_id, site_id, start, end, status in self._session.execute(query).all():
                found[(site_id, start, end)] = (entry_id, ImplementationStatus(status))
        return found

    def write(
        self,
        moved: Mapping[int, Observation],
        history: Sequence[tuple[int, Observation]],
        source: Source,
    ) -> None:
        """Move each entry of `moved` to its status (one executemany), append the history."""
        bind = self._bind
        if moved:
            params = [
                {
                    "entry_id": entry_id,
                    "new_status": int(seen.status),
                    "new_status_at": bind(seen.observed_at),
                    "new_source": source,
                }
                for entry_id, seen in sorted(moved.items())
            ]
            self._execute(_UPDATE_STATUS, params)
        if history:
            rows = [_history_row(entry_id, seen, source, bind) for entry_id, seen in history]
            self._execute(insert_for(self._session, _HISTORY_RAW), rows)

    def _execute(self, statement: Any, params: list[dict[str, Any]]) -> Any:
        return self._session.connection().execute(statement, params)


_UPDATE_STATUS = (
    update(_ENTRIES_RAW)
    .where(_ENTRIES_RAW.c.id == bindparam("entry_id"))
    .values(
        status=bindparam("new_status"),
        status_at=bindparam("new_status_at"),
        updated_source=bindparam("new_source"),
    )
)


def _history_row(
    entry_id: int, seen: Observation, source: Source, bind: DatetimeBinder
) -> dict[str, Any]:
    return {
        "entry_id": entry_id,
        "status": int(seen.status),
        "observed_at": bind(seen.observed_at),
        "source": source,
        "delivery_id": seen.delivery_id,
    }


def _entry_row(
    seen: Observation, start: Any, end: Any, source: Source, bind: DatetimeBinder
) -> dict[str, Any]:
    return {
        "site_id": seen.site_id,
        "start_at": start,
        "end_at": end,
        "power_kw": None,
        "status": int(seen.status),
        "status_at": bind(seen.observed_at),
        "updated_source": source,
    }
