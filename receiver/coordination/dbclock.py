"""The database's clock, as SQL: every lease and heartbeat time is read and written by it.

Leases are about the liveness of real processes on several hosts, so one clock must judge
them all: the database server's. Never the monitor's `Clock` (a demo runs it ×60, a test
freezes it) nor the host's. PostgreSQL: `clock_timestamp()`, the time at the moment of
evaluation (`now()` would be the start of the transaction, possibly long before). SQLite:
`strftime(…, 'now')`, written in exactly the text form `UtcDateTime` stores (naive UTC
with six fractional digits), so stored values and these compare as text correctly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Interval, String, func, literal
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"  # milliseconds; three zeros make microseconds


def now(dialect: Dialect) -> ColumnElement[Any]:
    """The database's current time."""
    return offset(dialect, 0.0)


def offset(dialect: Dialect, seconds: float) -> ColumnElement[Any]:
    """The database's current time plus `seconds` (negative: in the past)."""
    if dialect.name == "postgresql":
        moment: ColumnElement[Any] = func.clock_timestamp()
        if seconds:
            moment = moment + literal(timedelta(seconds=seconds), Interval())
        return moment
    if dialect.name == "sqlite":
        text = func.strftime(_SQLITE_FORMAT, "now", f"{seconds:+.3f} seconds", type_=String())
        return text + "000"
    raise NotImplementedError(f"no database clock for {dialect.name}")
