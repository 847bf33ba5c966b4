"""Replicas in one test process: Coordinators on engines of their own, driven round by round."""

from __future__ import annotations

from sqlalchemy import Engine

from receiver.coordination import leases
from receiver.storage.engine import session_factory


def owners(engine: Engine, kind: str) -> dict[int, str]:
    """Bucket → owner of the unexpired leases of `kind`, as the database has them."""
    with session_factory(engine)() as session:
        return leases.owners(session=session, kind=kind)
