"""Connection pools for the vendor client: one per poll worker, not one for all.

httpcore's pool walks every connection it holds on each request it assigns (is this one
expired? is its socket readable? — a system call per connection), and it counts all
its connections, busy or idle, against the keep-alive limit. The pollers keep ~50
requests in flight at 10,000 sites, so one pool meant ~50 connections walked per
request (14.6 % of the event loop's time in a py-spy profile of the polling monitor)
and, beyond the keep-alive limit of 20, connections closed as soon as they went idle
and opened again for the next request (docs/performance.md, "Session of 2026-12-02
(later)").

`ShardedTransport` keeps `shards` independent `httpx.AsyncHTTPTransport`s, deals the
asyncio tasks making requests to them in turn, and sends each request through its
task's pool. A poller's workers are tasks that live for the whole round, so each keeps
to one pool, and each pool holds a few connections instead of all of them. Everything
above the transport (the client's token flow, retries, circuit breaker, metrics) is
unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref

import httpx


class ShardedTransport(httpx.AsyncBaseTransport):
    """`shards` connection pools; a request goes through its task's (module doc)."""

    def __init__(self, shards: int, **transport_options: object) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        # One TLS context for all (building one reads the CA bundle: ~40 ms each).
        transport_options.setdefault("verify", httpx.create_ssl_context())
        self._pools = [
            httpx.AsyncHTTPTransport(**transport_options)  # type: ignore[arg-type]
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(range(shards))
        self._of_task: weakref.WeakKeyDictionary[asyncio.Task[object], int] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def pools(self) -> tuple[httpx.AsyncHTTPTransport, ...]:
        return tuple(self._pools)

    def pool_for(self, task: asyncio.Task[object] | None) -> httpx.AsyncHTTPTransport:
        """The pool of requests made by `task`: tasks are dealt to the pools in turn as
        they make their first request (the first pool outside any task)."""
        if task is None:
            return self._pools[0]
        index = self._of_task.get(task)
        if index is None:
            index = self._of_task[task] = next(self._turn)
        return self._pools[index]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self.pool_for(asyncio.current_task())
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
