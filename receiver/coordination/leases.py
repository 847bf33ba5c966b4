"""Lease rows: take, renew, hand back, and fence writes by epoch. Nothing here commits.

A lease (kind, bucket) is held by `owner` until `expires_at`, both judged by the
database's clock (receiver.coordination.dbclock). Each change of hands adds one to
`epoch`, so (kind, bucket, epoch) names one tenure exactly: a write made under a
lease calls `fence` in its own transaction, and once the lease has been released,
has expired or belongs to someone else, that write fails with `LeaseLost`.

On PostgreSQL `fence` holds `FOR SHARE` on the lease row until the write commits. A
takeover is an UPDATE of that row, so it waits for the write in flight, and every
later write of the old owner sees the new epoch. Taking leases in bulk
(`acquire_free`) skips rows locked that way instead of waiting (`SKIP LOCKED`); they
are taken at a later round. Keep fenced transactions short (well under the lease's
time to live): the owner's own renewal waits for them too. Fence several buckets in
one transaction with `fence_all`, which locks them in a fixed order, as renewal does.

SQLite has no row locks, and needs none: it allows one replica (receiver.coordination
.guards), and its writers take turns on the whole database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, case, or_, select, text, tuple_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from receiver.coordination import dbclock
from receiver.coordination.errors import LeaseLost
from receiver.storage.coordination_tables import Lease
from receiver.storage.dialect import insert_for

LEASES: Table = Lease.__table__  # type: ignore[attr-defined]
_OTHER = LEASES.alias("other")
CHANNEL = "cellect_leases"  # NOTIFY channel: a lease was handed back, a replica came or went


@dataclass(frozen=True, order=True)
class Held:
    """One tenure of a lease: ours while the row still has our owner id and this epoch."""

    kind: str
    bucket: int
    epoch: int


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _now(session: Session) -> ColumnElement[Any]:
    return dbclock.now(session.get_bind().dialect)


def _until(session: Session, ttl_s: float) -> ColumnElement[Any]:
    return dbclock.offset(session.get_bind().dialect, ttl_s)


def _free(session: Session, table: Any = LEASES) -> ColumnElement[bool]:
    """Nobody holds it: never taken, handed back, or expired."""
    expires = table.c.expires_at
    return or_(table.c.owner.is_(None), expires.is_(None), expires <= _now(session))


def ensure_leases(*, session: Session, kind: str, buckets: Iterable[int]) -> None:
    """Create the rows of leases (kind, b) for each bucket b, free, unless they exist."""
    rows = [{"kind": kind, "bucket": b, "epoch": 0} for b in buckets]
    if rows:
        stmt = insert_for(session, LEASES).on_conflict_do_nothing(index_elements=["kind", "bucket"])
        session.execute(stmt, rows)


def acquire(*, session: Session, owner: str, kind: str, bucket: int, ttl_s: float) -> int | None:
    """Take the lease (kind, bucket) for `ttl_s` seconds; its epoch, or None if someone
    else holds it. A free or expired lease gets a new epoch (+1); one `owner` holds
    already keeps its epoch and is extended. On PostgreSQL this waits for fenced writes
    in flight under the lease (their FOR SHARE lock)."""
    ensure_leases(session=session, kind=kind, buckets=[bucket])
    c = LEASES.c
    still_ours = and_(c.owner == owner, c.expires_at > _now(session))
    stmt = (
        update(LEASES)
        .where(c.kind == kind, c.bucket == bucket, or_(_free(session), c.owner == owner))
        .values(
            epoch=case((still_ours, c.epoch), else_=c.epoch + 1),
            acquired_at=case((still_ours, c.acquired_at), else_=_now(session)),
            owner=owner,
            expires_at=_until(session, ttl_s),
        )
        .returning(c.epoch)
    )
    epoch: int | None = session.execute(stmt).scalar_one_or_none()
    return epoch


def acquire_free(
    *, session: Session, owner: str, kind: str, limit: int, ttl_s: float
) -> list[Held]:
    """Take up to `limit` free or expired leases of `kind`, lowest buckets first, each
    with a new epoch. On PostgreSQL rows locked by others (a takeover racing this one, a
    fenced write in flight) are skipped, not waited for."""
    if limit <= 0:
        return []
    c, o = LEASES.c, _OTHER.c
    # An alias: the same table in the subquery would be correlated to the UPDATE's row.
    candidates = (
        select(o.bucket)
        .where(o.kind == kind, _free(session, _OTHER))
        .order_by(o.bucket)
        .limit(limit)
    )
    if _postgres(session):
        candidates = candidates.with_for_update(skip_locked=True)
    # A CTE is run once; as an IN subquery PostgreSQL may rescan it for every row, and
    # a rescan skips the rows this UPDATE changed and locks the next ones (all of them).
    chosen = candidates.cte("chosen")
    stmt = (
        update(LEASES)
        .where(c.kind == kind, c.bucket.in_(select(chosen.c.bucket)), _free(session))
        .values(
            owner=owner,
            epoch=c.epoch + 1,
            acquired_at=_now(session),
            expires_at=_until(session, ttl_s),
        )
        .returning(c.kind, c.bucket, c.epoch)
    )
    return sorted(Held(*row) for row in session.execute(stmt))


def _keys(held: Iterable[Held]) -> list[tuple[str, int, int]]:
    return [(h.kind, h.bucket, h.epoch) for h in held]


def _tenures(held: Iterable[Held]) -> ColumnElement[bool]:
    return tuple_(LEASES.c.kind, LEASES.c.bucket, LEASES.c.epoch).in_(_keys(held))


def renew(*, session: Session, owner: str, held: Iterable[Held], ttl_s: float) -> list[Held]:
    """Extend the leases of `held` whose row still has `owner` and the same epoch (even
    if expired meanwhile: nobody took it, so no one else's work can be overwritten);
    returns those, the ones still held. The others were lost."""
    held = list(held)
    if not held:
        return []
    c = LEASES.c
    mine = and_(c.owner == owner, _tenures(held))
    if _postgres(session):
        # Rows locked in key order, as fence_all locks them: never a deadlock with the
        # owner's own multi-bucket fenced writes.
        o = _OTHER.c
        ordered = (
            select(o.kind, o.bucket)
            .where(o.owner == owner, tuple_(o.kind, o.bucket, o.epoch).in_(_keys(held)))
            .order_by(o.kind, o.bucket)
            .with_for_update()
            .cte("ordered")
        )
        mine = and_(mine, tuple_(c.kind, c.bucket).in_(select(ordered.c.kind, ordered.c.bucket)))
    stmt = (
        update(LEASES)
        .where(mine)
        .values(expires_at=_until(session, ttl_s))
        .returning(c.kind, c.bucket, c.epoch)
    )
    return sorted(Held(*row) for row in session.execute(stmt))


def release(*, session: Session, owner: str, held: Iterable[Held] | None = None) -> list[Held]:
    """Hand back the leases of `held` still ours (None: every lease `owner` holds): owner
    NULL, expired now, the epoch kept (the next taker's is higher). On PostgreSQL, NOTIFY
    the other replicas at commit. Returns the ones handed back."""
    c = LEASES.c
    mine = c.owner == owner
    if held is not None:
        held = list(held)
        if not held:
            return []
        mine = and_(mine, _tenures(held))
    stmt = (
        update(LEASES)
        .where(mine)
        .values(owner=None, expires_at=_now(session))
        .returning(c.kind, c.bucket, c.epoch)
    )
    released = sorted(Held(*row) for row in session.execute(stmt))
    if released:
        notify(session=session, payload=owner)
    return released


def notify(*, session: Session, payload: str) -> None:
    """NOTIFY `cellect_leases` (PostgreSQL, sent at commit; nothing on SQLite)."""
    if _postgres(session):
        query = text("SELECT pg_notify(:channel, :payload)")
        session.execute(query, {"channel": CHANNEL, "payload": payload})


def fence(*, session: Session, kind: str, bucket: int, epoch: int) -> None:
    """Refuse the write in progress in `session` unless the lease (kind, bucket) is still
    held, unexpired, at `epoch`: raises `LeaseLost` (roll back; do not retry the write).

    Call it inside the write's transaction, before its commit. On PostgreSQL it holds
    the lease row FOR SHARE until then, so a takeover waits for this write."""
    fence_all(session=session, kind=kind, epochs={bucket: epoch})


def fence_all(*, session: Session, kind: str, epochs: Mapping[int, int]) -> None:
    """`fence` for several buckets of one kind (`epochs`: bucket → epoch), locked in
    bucket order; raises `LeaseLost` for the first one no longer ours."""
    if not epochs:
        return
    c = LEASES.c
    live = and_(c.owner.is_not(None), c.expires_at > _now(session))
    query = (
        select(c.bucket, c.owner, c.epoch, live)
        .where(c.kind == kind, c.bucket.in_(sorted(epochs)))
        .order_by(c.bucket)
    )
    if _postgres(session):
        query = query.with_for_update(read=True)  # FOR SHARE
    rows = {row[0]: row[1:] for row in session.execute(query)}
    for bucket in sorted(epochs):
        epoch = epochs[bucket]
        if bucket not in rows:
            raise LeaseLost(kind, bucket, epoch, "no such lease")
        owner, current, unexpired = rows[bucket]
        if current != epoch:
            raise LeaseLost(kind, bucket, epoch, f"now at epoch {current}, owner {owner}")
        if owner is None:
            raise LeaseLost(kind, bucket, epoch, "handed back")
        if not unexpired:
            raise LeaseLost(kind, bucket, epoch, "expired")


def owners(*, session: Session, kind: str) -> dict[int, str]:
    """Bucket → owner of the unexpired leases of `kind` (who polls what, who leads)."""
    c = LEASES.c
    query = select(c.bucket, c.owner).where(c.kind == kind, ~_free(session))
    return {bucket: owner for bucket, owner in session.execute(query)}
