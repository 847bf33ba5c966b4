"""Values bound the way the driver receives them, and tables whose columns bind them as is.

The hot write paths (webhook batches, status writes) bind through untyped views of the
tables (`untyped`), with datetimes already in the form the driver gets for a
`UtcDateTime` column (`datetime_binder`): SQLAlchemy's per-value type processing was
most of the writer's CPU. The values stored are identical; tests pin that on both
databases.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, column, table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import TableClause
from sqlmodel import Session

from receiver.storage.types import UtcDateTime

DatetimeBinder = Callable[[datetime], Any]


def untyped(source: Table) -> TableClause:
    """`source` with untyped columns: values bind as given, already in the driver's form."""
    return table(source.name, *(column(c.name) for c in source.c))


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
