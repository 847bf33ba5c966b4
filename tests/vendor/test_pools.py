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


async def connections_opened(transport: httpx.AsyncBaseTransport, sink: HttpSink) -> int:
    """`TASKS` long-lived tasks making `EACH` requests one after the other, as a poll
    round's workers do; how many connections the server saw."""
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:

        async def worker() -> None:
            for _ in range(EACH):
                (await client.get(sink.url("/site"))).raise_for_status()

        await asyncio.gather(*(worker() for _ in range(TASKS)))
    assert len(sink.requests) == TASKS * EACH
    return len({r.client for r in sink.requests})


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


async def test_one_pool_reconnects_what_sharded_pools_keep(sink: HttpSink) -> None:
    """One httpcore pool counts busy connections against its keep-alive limit (20), so
    with 48 in flight it closes connections as they go idle and opens new ones; eight
    pools of six connections each keep every task's connection for the whole round."""
    single = await connections_opened(httpx.AsyncHTTPTransport(), sink)
    sink.requests.clear()
    sharded = await connections_opened(ShardedTransport(shards=8), sink)
    assert sharded <= TASKS
    assert single > TASKS, "one pool no longer reconnects: the shards may not be needed"


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
