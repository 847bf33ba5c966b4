"""A replica's writes are fenced by the epochs it holds, on a real PostgreSQL: once another
replica has taken a bucket (a new epoch), a write the old owner makes for a site of that
bucket — still believing it holds it, as a paused process does — is refused, and nothing
of it is stored, its feed row included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import Session

from receiver.coordination import feed
from receiver.coordination.buckets import bucket_of
from receiver.coordination.coordinator import Coordinator
from receiver.coordination.errors import LeaseLost
from receiver.coordination.guards import code_revision
from receiver.coordination.registry import ReplicaIdentity
from receiver.coordination.replica import Replica
from receiver.storage.engine import create_engine_for, upgrade

pytestmark = pytest.mark.anyio
SITE = 7


@pytest.fixture
async def replica(postgres_url: str) -> AsyncIterator[Replica]:
    upgrade(postgres_url)
    engine = create_engine_for(postgres_url)
    identity = ReplicaIdentity.here(code_revision())
    # A long TTL: the replica's own clock keeps believing it holds its leases.
    coordinator = Coordinator(engine, replica=identity, lease_ttl_s=60, renew_s=20, listen=False)
    replica = Replica(engine, identity, coordinator=coordinator)
    await replica.start()
    yield replica
    engine.dispose()


def _take_over(engine: Engine, kind: str, bucket: int) -> None:
    """What another replica's round does to a lease it finds expired: a new owner and epoch."""
    with Session(engine) as session:
        session.execute(
            text(
                "UPDATE leases SET owner = 'r-successor', epoch = epoch + 1,"
                " expires_at = clock_timestamp() + interval '60 seconds'"
                " WHERE kind = :kind AND bucket = :bucket"
            ),
            {"kind": kind, "bucket": bucket},
        )
        session.commit()


def _feed_rows(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(feed.FEED)).scalar_one())


def _write(replica: Replica, *, sites: tuple[int, ...] = (), singleton: str | None = None) -> None:
    """A write as the pollers make it: its feed row, then the fence, then the commit."""
    with Session(replica.engine) as session:
        replica.publish(session, "status", feed.status_body([], None))
        replica.fence(session, sites=sites, singleton=singleton)
        session.commit()


async def test_a_stale_owner_write_is_refused_by_the_epoch(replica: Replica) -> None:
    assert len(replica.buckets) == 256
    assert replica.owns(SITE)
    _write(replica, sites=(SITE,))
    assert _feed_rows(replica.engine) == 1

    _take_over(replica.engine, "poll", bucket_of(SITE))
    assert replica.owns(SITE)  # it still believes so: no round has told it otherwise
    with pytest.raises(LeaseLost, match="epoch"):
        _write(replica, sites=(SITE, SITE + 1))
    assert _feed_rows(replica.engine) == 1  # nothing of the refused write

    await replica.coordinator.step()  # its next round learns the loss
    replica._after_round()
    assert not replica.owns(SITE)
    assert replica.coordinator.changes[("poll", "lost")] == 1
    with pytest.raises(LeaseLost, match="not held"):
        _write(replica, sites=(SITE,))


async def test_a_former_alert_leader_cannot_write(replica: Replica) -> None:
    assert replica.leads("alerts")
    _take_over(replica.engine, "alerts", 0)
    with pytest.raises(LeaseLost):
        _write(replica, singleton="alerts")
    assert _feed_rows(replica.engine) == 0
