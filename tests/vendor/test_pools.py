"""The vendor client's sharded connection pools (receiver.vendor.pools), against a real
HTTP server on loopback: each worker task keeps to one pool, and so to its connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from receiver.vendor.pools import ShardedTransport
from tests.support.sinks import HttpSink

pytestmark = pytest.mark.anyio
TASKS, EACH = 48, 5  # the pollers' workers at 10,000 sites: 16 per per-site stream


async def round_of_workers(
    transport: httpx.AsyncBaseTransport, sink: HttpSink
) -> dict[str, set[str]]:
    """`TASKS` long-lived tasks making `EACH` requests one after the other, as a poll
    round's workers do; per task, the connections (peer addresses) the server saw."""
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:

        async def worker(task: int) -> None:
            for _ in range(EACH):
                answer = await client.get(sink.url("/site"), headers={"x-task": str(task)})
                answer.raise_for_status()

        await asyncio.gather(*(worker(task) for task in range(TASKS)))
    assert len(sink.requests) == TASKS * EACH
    seen: dict[str, set[str]] = {}
    for request in sink.requests:
        seen.setdefault(request.headers["x-task"], set()).add(request.client)
    return seen


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


async def test_a_pool_per_worker_keeps_each_workers_connection(sink: HttpSink) -> None:
    """As the monitor runs it (a pool per poll worker): every worker's requests go over
    one connection of its own, kept alive for the whole round. (One httpcore pool counts
    busy connections against its keep-alive limit of 20, so with 48 in flight it may
    close a connection as soon as it goes idle: docs/performance.md.)"""
    seen = await round_of_workers(ShardedTransport(shards=TASKS), sink)
    assert len(seen) == TASKS
    assert all(len(connections) == 1 for connections in seen.values())
    assert len(set().union(*seen.values())) == TASKS


async def test_fewer_pools_than_workers_never_reconnect(sink: HttpSink) -> None:
    """Eight pools for 48 workers: at most six requests in flight a pool, below its
    keep-alive limit, so no connection is ever closed and opened again."""
    seen = await round_of_workers(ShardedTransport(shards=8), sink)
    assert len(set().union(*seen.values())) <= TASKS


async def test_tasks_are_dealt_to_the_pools_in_turn_and_keep_theirs() -> None:
    transport = ShardedTransport(shards=4)

    async def pools_of_one_task() -> tuple[httpx.AsyncHTTPTransport, httpx.AsyncHTTPTransport]:
        first = transport.pool_for(asyncio.current_task())
        await asyncio.sleep(0)
        return first, transport.pool_for(asyncio.current_task())

    seen = await asyncio.gather(*(pools_of_one_task() for _ in range(8)))
    assert all(first is again for first, again in seen)
    used = [first for first, _ in seen]
    assert all(used.count(pool) == 2 for pool in transport.pools)
    await transport.aclose()


def test_at_least_one_shard() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShardedTransport(shards=0)
