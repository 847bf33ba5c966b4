"""Alembic environment: migrates the connection handed over by `receiver.storage.engine`.

`upgrade()` passes its open connection in `config.attributes["connection"]`; the
`sqlalchemy.url` option is the fallback for running Alembic by hand.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, String, create_engine
from sqlalchemy.types import DateTime
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import receiver.storage.alert_tables
import receiver.storage.coordination_tables
import receiver.storage.secrets
import receiver.storage.tables  # noqa: F401  (registers the tables on the metadata)
from receiver.storage.types import UtcDateTime

target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones, so migrations import nothing of ours."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return repr(DateTime(timezone=True)).replace("DateTime", "sa.DateTime")
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa." + repr(String(obj.length))
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


run_migrations_online()
