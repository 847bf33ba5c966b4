"""Column types shared by the tables: timezone-aware UTC datetimes on every database.

PostgreSQL keeps `timestamptz` natively; SQLite has no zone-aware type, so values are
stored as naive UTC and given their `tzinfo` back on the way out. Naive datetimes are
refused on the way in: a naive value is exactly the local-time-as-UTC mistake to catch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime column that accepts and returns only aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"expected an aware datetime, got {value!r}")
        moment = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite would drop the zone anyway; storing naive UTC keeps ordering correct.
            return moment.replace(tzinfo=None)
        return moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def utc_now() -> datetime:
    """Now, aware, in UTC (for defaults only; time rules read the injected Clock)."""
    return datetime.now(UTC)


class UtcDateTimeRead(UtcDateTime):
    """`UtcDateTime` for reads of thousands of rows: on SQLite the stored text is parsed by
    one C call (`datetime.fromisoformat`) instead of SQLAlchemy's regular expression, most
    of the cost of reading a fleet's timestamps. Same values; use it through
    `type_coerce(column, UtcDateTimeRead())`, which leaves the SQL as it is."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def parse(value: Any) -> datetime | None:
            if value is None:
                return None
            if len(value) <= 26:  # naive UTC, as UtcDateTime stores it: say so while parsing
                return datetime.fromisoformat(value + "+00:00")
            return datetime.fromisoformat(value).astimezone(UTC)

        return parse
