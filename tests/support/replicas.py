"""Replicas in one test process: Coordinators on engines of their own, driven round by round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine

from receiver.coordination import leases
from receiver.coordination.coordinator import Coordinator
from receiver.storage.engine import create_engine_for, session_factory, upgrade


@asynccontextmanager
async def replicas(url: str, count: int, **options: Any) -> AsyncIterator[list[Coordinator]]:
    """`count` started Coordinators on `url` (migrated), each with an engine of its own,
    as separate processes would have; their engines are disposed on exit (a replica the
    test did not close is left as a crash leaves it)."""
    upgrade(url)
    engines = [create_engine_for(url) for _ in range(count)]
    try:
        coordinators = [Coordinator(e, **options) for e in engines]
        for coordinator in coordinators:
            await coordinator.start()
        yield coordinators
    finally:
        for engine in engines:
            engine.dispose()


async def rounds_until(
    coordinators: list[Coordinator],
    done: Callable[[], bool],
    *,
    rounds: int = 10,
    pause_s: float = 0.0,
) -> int:
    """Step every coordinator in turn until `done()`, at most `rounds` times; how many
    rounds it took (the caller asserts `done()`)."""
    for n in range(1, rounds + 1):
        for coordinator in coordinators:
            await coordinator.step()
        if done():
            return n
        await asyncio.sleep(pause_s)
    return rounds


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout_s: float) -> float:
    """Poll `check` every 10 ms until true, for at most `timeout_s`; the seconds it took,
    or raises AssertionError."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        result = check()
        if result if isinstance(result, bool) else await result:
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {timeout_s} s")


def owners(engine: Engine, kind: str) -> dict[int, str]:
    """Bucket → owner of the unexpired leases of `kind`, as the database has them."""
    with session_factory(engine)() as session:
        return leases.owners(session=session, kind=kind)
