"""Dialect-specific INSERT … ON CONFLICT, and chunking that respects bound-parameter limits.

SQLite and PostgreSQL both spell upserts `INSERT … ON CONFLICT`; SQLAlchemy exposes
them through each dialect's own `insert`, so the repository picks the right one per
session. Multi-row inserts are chunked: SQLite allows 32,766 parameters a statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

T = TypeVar("T")

Insert = postgresql.Insert | sqlite.Insert
# Rows per multi-row statement: at ~12 columns a row, well under every parameter limit.
CHUNK_ROWS = 500


def insert_for(session: Session, table: Any) -> Insert:
    """`INSERT INTO table` in the dialect of the session's database, with ON CONFLICT.

    Built on the Table, not the mapped class, so it runs as plain Core (one statement,
    true rowcounts) rather than through the ORM's bulk-insert path.
    """
    table = getattr(table, "__table__", table)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[T], size: int = CHUNK_ROWS) -> Iterator[Sequence[T]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]
