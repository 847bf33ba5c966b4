"""The secrets the monitor generates for itself and keeps (the webhook secret, the admin token)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, String, select

from receiver.cellect.clock import Clock
from receiver.storage.dialect import insert_for
from receiver.storage.engine import session_factory
from receiver.storage.types import UtcDateTime


class MonitorSecret(SQLModel, table=True):
    """A secret the monitor generated for itself (e.g. the webhook secret)."""

    __tablename__ = "monitor_secrets"
    name: str = Field(primary_key=True, sa_type=String(64))
    value: str
    created_at: datetime = Field(sa_type=UtcDateTime)


def get_or_create_secret(
    *, session: Session, name: str, factory: Callable[[], str], now: datetime
) -> str:
    """The secret stored under `name`, generated with `factory` the first time.

    Safe when two processes start at once: the loser of the insert race reads the
    winner's value.
    """
    stmt = insert_for(session, MonitorSecret).values(name=name, value=factory(), created_at=now)
    session.exec(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return session.exec(select(MonitorSecret.value).where(MonitorSecret.name == name)).one()


def kept_secret(engine: Engine, clock: Clock, name: str) -> str:
    """The secret kept in the DB under `name`, generated (and kept) the first time."""
    with session_factory(engine)() as session:
        value = get_or_create_secret(
            session=session, name=name, factory=lambda: secrets.token_urlsafe(32), now=clock.now()
        )
        session.commit()
    return value
