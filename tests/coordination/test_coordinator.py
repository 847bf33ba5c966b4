"""Coordinators standing for replicas: fair shares, hand-overs on leave, join and crash."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from receiver.coordination import leases, registry
from receiver.coordination.coordinator import Coordinator
from receiver.coordination.errors import LeaseLost, SingleReplicaOnly
from receiver.coordination.guards import code_revision
from receiver.coordination.registry import ReplicaIdentity
from receiver.storage.engine import create_engine_for, session_factory, upgrade
from tests.support.replicas import eventually, owners, replicas, rounds_until

pytestmark = pytest.mark.anyio
ALL = frozenset(range(256))


def _balanced(group: list[Coordinator]) -> bool:
    held = [c.buckets for c in group]
    return sum(map(len, held)) == 256 and frozenset().union(*held) == ALL


def _leaders(group: list[Coordinator], kind: str) -> list[str]:
    return [c.id for c in group if kind in c.singletons]


def _one_leader(group: list[Coordinator], kind: str) -> Callable[[], bool]:
    return lambda: len(_leaders(group, kind)) == 1


@pytest.mark.postgres
async def test_three_replicas_hold_86_85_85_buckets_none_twice(postgres_url: str) -> None:
    """Three replicas split the 256 buckets 86/85/85 in one round, no bucket held by two,
    the database agreeing; each singleton lease has exactly one holder."""
    async with replicas(postgres_url, 3, listen=False) as group:
        assert await rounds_until(group, lambda: _balanced(group)) == 1
        assert sorted(len(c.buckets) for c in group) == [85, 85, 86]
        in_database = owners(group[0].engine, "poll")
        assert {c.id: c.buckets for c in group} == {
            c.id: frozenset(b for b, o in in_database.items() if o == c.id) for c in group
        }
        for kind in ("portfolio", "alerts"):
            assert len(_leaders(group, kind)) == 1
            assert owners(group[0].engine, kind) == {0: _leaders(group, kind)[0]}
        assert sum(c.lease_changes for c in group) == 256 + 2


@pytest.mark.postgres
async def test_a_joining_replica_gets_its_share_from_the_others(postgres_url: str) -> None:
    """Two replicas hold 128 each; a third joins: the others hand back the excess and
    it takes it, ending 86/85/85 with no bucket held twice, in a few rounds."""
    async with replicas(postgres_url, 3, listen=False) as group:
        first_two, newcomer = group[:2], group[2]
        # The newcomer registered already: take it out until it "joins".
        await newcomer.close()
        assert await rounds_until(first_two, lambda: _balanced(first_two)) == 1
        assert [len(c.buckets) for c in first_two] == [128, 128]
        await newcomer.start()
        assert await rounds_until(group, lambda: _balanced(group), rounds=5) <= 2
        assert sorted(len(c.buckets) for c in group) == [85, 85, 86]
        assert sum(c.changes[("poll", "released")] for c in first_two) >= 85


@pytest.mark.postgres
async def test_a_graceful_stop_hands_over_within_one_notify_step(postgres_url: str) -> None:
    """A replica that stops gracefully hands back its leases with a NOTIFY: the others,
    whose rounds are a minute apart, hold every bucket (and its singletons) well under a
    second later, none twice."""
    async with replicas(postgres_url, 3, renew_s=60.0) as group:
        assert await rounds_until(group, lambda: _balanced(group)) == 1
        leaving, staying = group[0], group[1:]
        stop = asyncio.Event()
        loops = [asyncio.create_task(c.run(stop)) for c in staying]
        try:
            for c in staying:
                assert c.listener is not None
                await asyncio.wait_for(c.listener.listening.wait(), timeout=10)
            await eventually(lambda: all(c.rounds >= 2 for c in staying), timeout_s=5)
            rounds = [c.rounds for c in staying]
            singletons = set(leaving.singletons)
            started = time.monotonic()
            await leaving.close()
            await eventually(lambda: _balanced(staying), timeout_s=1.0)
            took = time.monotonic() - started
            assert took < 1.0
            assert sorted(len(c.buckets) for c in staying) == [128, 128]
            assert all(c.rounds <= r + 2 for c, r in zip(staying, rounds, strict=True))
            for kind in singletons:
                await eventually(_one_leader(staying, kind), timeout_s=1.0)
            assert owners(staying[0].engine, "poll").keys() == ALL
            assert leaving.id not in owners(staying[0].engine, "poll").values()
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*loops), timeout=10)


@pytest.mark.postgres
async def test_a_crashed_replicas_buckets_are_taken_once_its_leases_expire(
    postgres_url: str,
) -> None:
    """A replica that stops renewing (a crash, simulated with 1 s TTLs) keeps its buckets
    until they expire; then the others take them at higher epochs, its local view drops
    them, and its fenced writes are refused."""
    options = {"lease_ttl_s": 1.0, "replica_ttl_s": 1.0, "listen": False}
    async with replicas(postgres_url, 3, **options) as group:
        assert await rounds_until(group, lambda: _balanced(group)) == 1
        crashed, survivors = group[2], group[:2]
        old = {b: crashed.epoch_of("poll", b) for b in crashed.buckets}
        await rounds_until(survivors, lambda: _balanced(survivors), rounds=60, pause_s=0.1)
        assert _balanced(survivors)
        assert sorted(len(c.buckets) for c in survivors) == [128, 128]
        for bucket, epoch in old.items():
            taker = next(c for c in survivors if bucket in c.buckets)
            assert (taker.epoch_of("poll", bucket) or 0) > (epoch or 0)
        for kind in ("portfolio", "alerts"):
            await rounds_until(survivors, _one_leader(survivors, kind))
            assert len(_leaders(survivors, kind)) == 1
        assert crashed.buckets == frozenset()
        assert crashed.singletons == frozenset()
        bucket, epoch = next(iter(old.items()))
        with session_factory(crashed.engine)() as session:
            with pytest.raises(LeaseLost):
                crashed.fence(session, "poll", bucket)
            with pytest.raises(LeaseLost, match="now at epoch"):
                leases.fence(session=session, kind="poll", bucket=bucket, epoch=epoch or 0)


async def test_sqlite_refuses_a_second_replica_at_start(sqlite_url: str) -> None:
    """On SQLite a second Coordinator's start is refused while the first is live, naming
    it; after the first stops gracefully the second starts and holds everything."""
    async with replicas(sqlite_url, 1) as (first,):
        second = Coordinator(first.engine)
        with pytest.raises(SingleReplicaOnly, match=f"replica {first.id} on host"):
            await second.start()
        await first.step()
        assert len(first.buckets) == 256
        await first.close()
        await second.start()
        await second.step()
        assert len(second.buckets) == 256
        assert second.singletons == {"portfolio", "alerts"}
        await second.close()


async def test_a_replica_forgotten_by_the_registry_joins_again_at_its_next_round(
    sqlite_url: str,
) -> None:
    """A replica whose registry row was deleted (forgotten after a long silence) registers
    again at its next round and keeps its leases; rounds need `start` first."""
    async with replicas(sqlite_url, 1) as (only,):
        await only.step()
        with session_factory(only.engine)() as session:
            registry.deregister(session=session, replica_id=only.id)
            session.commit()
        await only.step()
        with session_factory(only.engine)() as session:
            assert [r.id for r in registry.live_replicas(session=session, ttl_s=15)] == [only.id]
        assert len(only.buckets) == 256
        assert only.changes[("poll", "lost")] == 0
        await only.close()
        with pytest.raises(RuntimeError, match="start"):
            await only.step()


async def test_a_replica_of_this_host_whose_process_is_gone_is_taken_over_at_once(
    postgres_url: str,
) -> None:
    """A monitor killed with -9 and started again: its ghost (this host, its pid gone)
    still holds every lease for a TTL by the database's clock, but the new replica's first
    round takes them all, at higher epochs, and deregisters the ghost."""
    upgrade(postgres_url)
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    ghost_id = replace(ReplicaIdentity.here(code_revision()), pid=gone.pid)
    engines = [create_engine_for(postgres_url) for _ in range(2)]
    try:
        ghost = Coordinator(engines[0], replica=ghost_id, lease_ttl_s=600, listen=False)
        await ghost.start()
        await ghost.step()
        assert len(ghost.buckets) == 256
        old = {b: ghost.epoch_of("poll", b) or 0 for b in ghost.buckets}
        heir = Coordinator(engines[1], lease_ttl_s=600, listen=False)
        await heir.start()
        await heir.step()
        assert len(heir.buckets) == 256
        assert heir.singletons == frozenset({"portfolio", "alerts"})
        assert all((heir.epoch_of("poll", b) or 0) > e for b, e in old.items())
        with session_factory(engines[1])() as session:
            ids = [r.id for r in registry.live_replicas(session=session, ttl_s=600)]
            assert ghost_id.id not in ids
    finally:
        for engine in engines:
            engine.dispose()
