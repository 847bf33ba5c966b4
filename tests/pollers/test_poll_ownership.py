"""A replica's per-site round stops fetching the sites of buckets it hands away.

A round's sites are those of the buckets held when it began. When another replica joins
mid-round and this one hands it half of its buckets, the new owner polls their sites;
this replica fetching them too, to the end of its round, would send the vendor duplicate
requests whose answers it then drops (bench/replicas.py saw 1,485 of 3,000 sites polled
twice per stream this way). Real Coordinators on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio

import pytest

from receiver.coordination.buckets import BUCKETS
from receiver.coordination.coordinator import Coordinator
from receiver.coordination.guards import code_revision
from receiver.coordination.registry import ReplicaIdentity
from receiver.coordination.replica import Replica
from receiver.pollers.context import PollContext
from receiver.storage.engine import create_engine_for, upgrade
from tests.support.replicas import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
SITES = range(1, 401)


def _replica(url: str) -> Replica:
    engine = create_engine_for(url)
    identity = ReplicaIdentity.here(code_revision())
    return Replica(engine, identity, coordinator=Coordinator(engine, replica=identity))


async def test_sites_of_buckets_handed_away_mid_round_are_not_fetched(postgres_url: str) -> None:
    """A holds every bucket when its round begins; B joins after 40 sites and A hands
    it half: from then on A fetches, and stores, only sites of the buckets it kept."""
    upgrade(postgres_url)
    first, second = _replica(postgres_url), _replica(postgres_url)
    stop = asyncio.Event()
    rounds: asyncio.Task[None] | None = None
    fetched: list[int] = []
    stored: list[int] = []  # after the hand-over
    handed_over_at: list[int] = []
    moved = asyncio.Event()

    async def fetch(site_id: int) -> int:
        fetched.append(site_id)
        if len(fetched) == 40:  # B joins; A's lease round (woken by NOTIFY) hands half over
            await second.start()
            await eventually(lambda: len(first.buckets) < BUCKETS, timeout_s=10)
            handed_over_at.append(len(fetched))
            moved.set()
        elif len(fetched) > 40:  # the requests in flight meanwhile answer after it
            await moved.wait()
        await asyncio.sleep(0)
        return site_id

    async def store(chunk: dict[int, int]) -> None:
        if moved.is_set():
            stored.extend(chunk)

    try:
        await first.start()
        assert len(first.buckets) == BUCKETS
        rounds = asyncio.create_task(first.run(stop))
        context = PollContext(None, None, None, concurrency=4, chunk=10, replica=first)  # type: ignore[arg-type]
        assert await context.fetch_each(SITES, fetch, store) is None
        kept = first.buckets
    finally:
        stop.set()
        if rounds is not None:
            await rounds
        await second.close()
        await first.close()
        first.engine.dispose()
        second.engine.dispose()
    assert handed_over_at
    assert 0 < len(kept) < BUCKETS
    later = fetched[handed_over_at[0] :]
    foreign = [site for site in later if first.bucket(site) not in kept]
    assert later, "A stopped fetching its own sites too"
    assert not foreign, f"fetched after the hand-over, no longer A's: {foreign[:10]}"
    assert stored
    assert all(first.bucket(site) in kept for site in stored)
